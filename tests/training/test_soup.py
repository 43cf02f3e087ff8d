"""`python -m app.training.soup`: the mean of checkpoints' weights, on the shipped model."""

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from app.training.soup import main


def _copy_scaled(src, dst, scale):
    shutil.copytree(src, dst)
    state = load_file(str(dst / "model.safetensors"))
    save_file({k: (v.float() * scale).to(v.dtype).contiguous() for k, v in state.items()}, str(dst / "model.safetensors"))
    return state


def test_the_soup_is_the_elementwise_mean_and_loads(tmp_path, model_path):
    state = _copy_scaled(model_path, tmp_path / "a", 1.0)
    _copy_scaled(model_path, tmp_path / "b", 3.0)
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")]) == 0
    mean = load_file(str(tmp_path / "soup" / "model.safetensors"))
    assert set(mean) == set(state)
    for k, v in state.items():
        torch.testing.assert_close(mean[k].float(), 2.0 * v.float(), rtol=1e-2, atol=1e-6)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(tmp_path / "soup")  # config and tokenizer came along
    mode = (tmp_path / "soup" / "config.json").stat().st_mode
    assert (tmp_path / "soup" / "model.safetensors").stat().st_mode == mode  # the weights as readable as the rest


@pytest.mark.parametrize("umask", [0o027, 0o077, 0o002])
def test_every_file_of_the_soup_gets_the_umasks_mode(tmp_path, model_path, umask):
    """Whatever the sources' modes (here private, 0600), the soup's files are all made as any new file:
    0666 less the umask, the weights included (safetensors alone would write them 0600)."""
    for name in ("a", "b"):
        shutil.copytree(model_path, tmp_path / name)
        for f in (tmp_path / name).iterdir():
            f.chmod(0o600)
    before = os.umask(umask)
    try:
        assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")]) == 0
    finally:
        os.umask(before)
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "soup").iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o666 & ~umask}, modes


def test_models_of_different_shapes_are_refused(tmp_path, model_path, capsys):
    state = _copy_scaled(model_path, tmp_path / "a", 1.0)
    shutil.copytree(model_path, tmp_path / "b")
    name = next(iter(state))
    save_file({**state, name: torch.zeros(3)}, str(tmp_path / "b" / "model.safetensors"))
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "soup")])
    assert e.value.code == 2 and "same tensors" in capsys.readouterr().err
    assert not (tmp_path / "soup" / "model.safetensors").exists()
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "a"), "--out", str(tmp_path / "soup")])
    assert e.value.code == 2
    before = (tmp_path / "a" / "model.safetensors").read_bytes()
    with pytest.raises(SystemExit) as e:  # never over an input
        main([str(tmp_path / "a"), str(model_path), "--out", str(tmp_path / "a")])
    assert e.value.code == 2 and (tmp_path / "a" / "model.safetensors").read_bytes() == before


def test_other_configs_unreadable_weights_and_used_outputs_are_refused(tmp_path, model_path, capsys):
    import json

    _copy_scaled(model_path, tmp_path / "a", 1.0)
    _copy_scaled(model_path, tmp_path / "b", 1.0)
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    (tmp_path / "b" / "config.json").write_text(json.dumps({**config, "rope_theta": 1234.0}))
    cases = [([str(tmp_path / "a"), str(tmp_path / "b")], "another config"),  # same shapes, another model
             ([str(tmp_path / "a"), str(model_path), "--out", str(tmp_path / "a" / "config.json")], "not a directory")]
    (tmp_path / "c").mkdir()
    shutil.copy2(model_path / "config.json", tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"")
    cases.append(([str(tmp_path / "a"), str(tmp_path / "c")], "cannot read"))
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("x")
    cases.append(([str(tmp_path / "a"), str(model_path), "--out", str(tmp_path / "used")], "not empty"))
    for argv, message in cases:
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "soup")]
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err, (argv, err)
    assert not (tmp_path / "soup" / "model.safetensors").exists()
