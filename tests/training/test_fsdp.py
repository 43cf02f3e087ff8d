"""`rise train rise --fsdp` under two processes (`accelerate launch`, gloo on the CPU): the weights,
gradients and optimizer state sharded over them (FSDP2), the main process gathering the weights to
save and evaluate them. Its own file, so that it runs beside tests/training/test_distributed.py.

    .venv/bin/python -m pytest -q tests/training/test_fsdp.py
"""

import json
import subprocess
import sys

import pytest

from app.api.launch import free_port
from tests.servers import ROOT
from tests.training.test_distributed import _launch

@pytest.mark.slow
def test_rise_train_rise_with_fsdp_saves_the_weights_one_process_trains(tmp_path):
    """Full weights sharded over two processes: the main process gathers them, saves and evaluates;
    the same collection, losses, evaluation and saved weights as one process without FSDP."""
    from safetensors.torch import load_file

    argv = ["-m", "app.cli", "train", "rise", "--model", str(ROOT / "models" / "base-synth"), "--problems", "4",
            "--iterations", "1", "--turns", "2", "--best-of", "2", "--epochs", "1", "--batch-size", "4",
            "--eval-limit", "2", "--lr", "1e-3"]
    runs = {}
    for name, launch, extra in (("one", [sys.executable], []), ("two", _launch(free_port()), ["--fsdp"])):
        r = subprocess.run([*launch, *argv, *extra, "--out", str(tmp_path / name)], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count("rise train rise: ") == 1
        runs[name] = json.loads((tmp_path / name / "iterations.json").read_text())
    [one], [two] = runs["one"], runs["two"]
    assert one["collect"] == two["collect"] and one["train"]["tokens"] == two["train"]["tokens"]
    assert two["train"]["loss_curve"] == pytest.approx(one["train"]["loss_curve"], abs=2e-4)
    assert two["eval"] == one["eval"]
    a, b = (load_file(str(tmp_path / n / "iter-1" / "model.safetensors")) for n in ("one", "two"))
    assert a.keys() == b.keys()
    for k in a:  # saved in bf16: equal up to a rounding step
        assert (a[k].float() - b[k].float()).abs().max() <= 2e-2 * a[k].float().abs().max() + 1e-6, k
