"""Multi-process training (app/training/distributed.py): one step of two processes under `accelerate
launch` (DDP over gloo on the CPU), each on half of a batch whose rows weigh differently, equals one
process's step on the whole batch: the same loss, gradient norm and updated weights (up to float
summation order). The weighted loss is normalised over the whole batch, not per process. The two
processes also split their shares into micro-batches (`--grad-accum 2`, DDP's sync on the last
one only): still the same step. So does FSDP (`--fsdp`: the weights, gradients and optimizer state
sharded over the two); `rise train rise --fsdp` end to end is in tests/training/test_fsdp.py."""

import json
import subprocess
import sys

import pytest

from app.api.launch import free_port
from tests.servers import ROOT


def _step(out, *launch: str, accum: int = 1, fsdp: bool = False) -> dict:
    r = subprocess.run([*launch, "-m", "app.training.distributed", "--out", str(out), "--model",
                        str(ROOT / "models" / "base-synth"), "--rows", "5", "--grad-accum", str(accum),
                        *(["--fsdp"] if fsdp else [])],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "step.json").read_text())


@pytest.fixture(scope="module")
def one_step(tmp_path_factory) -> dict:
    """One process's step on the whole batch: what every multi-process step is compared with."""
    return _step(tmp_path_factory.mktemp("one"), sys.executable)


@pytest.mark.slow
@pytest.mark.parametrize("fsdp", [False, True], ids=["ddp", "fsdp"])
def test_two_processes_take_the_same_step_as_one(tmp_path, fsdp, one_step):
    """DDP (the model replicated) and FSDP (sharded over the two: its shards gathered to compare)."""
    one = one_step
    two = _step(tmp_path / "two", *_launch(free_port()), accum=2, fsdp=fsdp)
    assert (one["processes"], two["processes"]) == (1, 2)
    assert one["tokens"] == two["tokens"] and two["loss"] == pytest.approx(one["loss"], abs=1e-4)
    assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-5)
    assert one["weights"].keys() == two["weights"].keys()
    for name, value in one["weights"].items():
        assert two["weights"][name] == pytest.approx(value, abs=1e-5), name


def _launch(port: int) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]


@pytest.mark.slow
def test_rise_train_rise_under_accelerate_matches_one_process(tmp_path):
    """The main process collects and evaluates, both train: two LoRA iterations give the same data,
    losses and evaluation as one process (the second iteration rolls out the first's adapter)."""
    argv = ["-m", "app.cli", "train", "rise", "--model", str(ROOT / "models" / "base-synth"), "--problems", "4",
            "--iterations", "2", "--turns", "2", "--best-of", "2", "--epochs", "1", "--batch-size", "4", "--lora-r", "4",
            "--eval-limit", "2", "--lr", "1e-3"]
    runs = {}
    for name, launch in (("one", [sys.executable]), ("two", _launch(free_port()))):
        r = subprocess.run([*launch, *argv, "--out", str(tmp_path / name)], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count("rise train rise: ") == 1  # one summary, from the main process
        runs[name] = json.loads((tmp_path / name / "iterations.json").read_text())
    for one, two in zip(runs["one"], runs["two"], strict=True):
        assert one["collect"] == two["collect"] and one["train"]["tokens"] == two["train"]["tokens"]
        assert two["train"]["loss_curve"] == pytest.approx(one["train"]["loss_curve"], abs=2e-4)
        assert two["eval"] == one["eval"]
