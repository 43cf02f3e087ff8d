"""Every subcommand refuses bad arguments the way docs/cli.md promises: a message naming the
problem on stderr and exit status 2, never a traceback. `rise serve` runs as a real process; the
others through the same `main` in this process (tests/cli.py).

    .venv/bin/python -m pytest -q tests/test_cli_args.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from app import cli_args
from tests.cli import rise_here

ROOT = Path(__file__).resolve().parent.parent
Q = "Sam has 3 apples. He buys 2 more. How many apples does Sam have now?"


def refused(cases: list[tuple[list[str], str]], timeout: float = 60, env: dict[str, str] | None = None) -> None:
    """Run `rise ARGS` for each case (this environment plus `env`) and check that each is refused:
    `rise serve` as a real process (a few at once; it installs signal handlers), the other commands
    through `main` in this process (tests/cli.py)."""
    def run(args):
        if args[0] != "serve":
            return rise_here(*args, check=False, env=env)
        return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **(env or {})})

    here = [run(args) for args, _ in cases if args[0] != "serve"]
    with ThreadPoolExecutor(4) as pool:
        served = iter(pool.map(run, [args for args, _ in cases if args[0] == "serve"]))
    ran = iter(here)
    results = [next(served) if args[0] == "serve" else next(ran) for args, _ in cases]
    failures = [f"{args}: exit {p.returncode}, stderr {p.stderr[-600:]!r}"
                for (args, message), p in zip(cases, results)
                if p.returncode != 2 or message not in p.stderr or "Traceback" in p.stderr]
    assert not failures, "\n".join(failures)


def test_serve(tmp_path):
    refused([
        (["serve", "--api-keys-file", "/nonexistent"], "/nonexistent"),
        (["serve", "--log-level", "bogus"], "--log-level"),
        (["serve", "--port", "-1"], "--port"),
        (["serve", "--port", "65536"], "--port"),
        (["serve", "--port", "http"], "--port"),
        (["serve", "--model", str(tmp_path)], "not a model directory"),
        (["serve", "--engine-args", "[1]"], "--engine-args"),
        (["serve", "--engine", "openai"], "--base-url"),
        (["serve", "--host", "256.1.1.1"], "256.1.1.1"),
    ])


def test_serve_reads_bad_settings_from_the_environment_too():
    def run(env):
        return subprocess.run([sys.executable, "-m", "app.cli", "serve"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, env={**os.environ, **env})

    for env, message in [({"RISE_LOG_LEVEL": "bogus"}, "RISE_LOG_LEVEL"),
                         ({"RISE_API_KEYS_FILE": "/nonexistent"}, "/nonexistent"),
                         ({"RISE_PORT": "99999"}, "port")]:
        p = run(env)
        assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr, (env, p.stderr[-600:])


def test_eval(tmp_path):
    out = ["--out", str(tmp_path / "out"), "--limit", "2", "--turns", "1"]
    refused([
        (["eval", *out, "--turns", "0"], "--turns"),
        (["eval", *out, "--model", "/tmp"], "not a model directory"),
        (["eval", *out, "--temperature", "-1"], "--temperature"),
        (["eval", *out, "--temperature", "nan"], "--temperature"),
        (["eval", *out, "--limit", "-5"], "--limit"),
        (["eval", *out, "--limit", "0"], "--limit"),
        (["eval", *out, "--max-tokens", "0"], "--max-tokens"),
        (["eval", *out, "--seeds", "-1"], "--seeds"),
        (["eval", *out, "--batch-size", "0"], "--batch-size"),
        (["eval", *out, "--concurrency", "0"], "--concurrency"),
        (["eval", *out, "--engine", "bogus"], "--engine"),
        (["eval", *out, "--engine", "openai"], "--base-url"),
        (["eval", *out, "--engine", "openai", "--base-url", "http://127.0.0.1:1/v1"], "127.0.0.1:1"),
        (["eval", "--limit", "2", "--turns", "1", "--out", "/proc/nope"], "/proc/nope"),
        (["eval", "--limit", "2", "--turns", "1", "--out", __file__], "not a directory"),
    ])


def test_eval_without_benchmark_data(tmp_path):
    refused([(["eval", "--dataset", "gsm8k", "--limit", "2", "--out", str(tmp_path)], "RISE_DATA_DIR")],
            env={"RISE_DATA_DIR": str(tmp_path / "none")})


def test_bench(tmp_path):
    out = ["--out", str(tmp_path / "out"), "--quick"]
    refused([
        (["bench", *out, "--clients", "0"], "--clients"),
        (["bench", *out, "--duration", "-1"], "--duration"),
        (["bench", *out, "--duration", "0"], "--duration"),
        (["bench", *out, "--requests", "0"], "--requests"),
        (["bench", *out, "--naive-requests", "0"], "--naive-requests"),
        (["bench", *out, "--one-client-requests", "-1"], "--one-client-requests"),
        (["bench", *out, "--turns", "0"], "--turns"),
        (["bench", *out, "--max-tokens", "0"], "--max-tokens"),
        (["bench", *out, "--max-batch-size", "0"], "--max-batch-size"),
        (["bench", *out, "--rounds", "0"], "--rounds"),
        (["bench", *out, "--seed", "-1"], "--seed"),
        (["bench", *out, "--model", "/tmp"], "not a model directory"),
        (["bench", *out, "--contenders", "nope"], "--contenders"),
        (["bench", "--quick", "--out", "/proc/nope"], "/proc/nope"),
    ])


def test_refine():
    refused([
        (["refine", Q, "--turns", "0"], "--turns"),
        (["refine", Q, "--samples", "0"], "--samples"),
        (["refine", Q, "--temperature", "-1"], "--temperature"),
        (["refine", Q, "--top-p", "1.5"], "top_p"),
        (["refine", Q, "--max-tokens", "0"], "--max-tokens"),
        (["refine", Q, "--seed", "-1"], "--seed"),
        (["refine", Q, "--engine", "bogus"], "--engine"),
        (["refine", Q, "--model", "/tmp"], "not a model directory"),
    ])


def test_train_base(tmp_path):
    out = ["--out", str(tmp_path / "m"), "--size", "tiny", "--steps", "1"]
    refused([
        (["train", "base", *out, "--batch-size", "0"], "--batch-size"),
        (["train", "base", *out, "--minutes", "-1"], "--minutes"),
        (["train", "base", *out, "--minutes", "0"], "--minutes"),
        (["train", "base", *out, "--steps", "0"], "--steps"),
        (["train", "base", *out, "--lr", "0"], "--lr"),
        (["train", "base", *out, "--workers", "-1"], "--workers"),
        (["train", "base", *out, "--seed", "-1"], "--seed"),
        (["train", "base", *out, "--init", "/tmp"], "not a model directory"),
        (["train", "base", "--size", "tiny", "--steps", "1", "--out", "/proc/nope"], "/proc/nope"),
        (["train", "nope"], "usage"),
    ])


def test_train_rise(tmp_path):
    base = ["train", "rise", "--model", str(ROOT / "models" / "base-synth"), "--out", str(tmp_path / "r"),
            "--problems", "2", "--iterations", "1", "--best-of", "1"]
    refused([
        (base + ["--iterations", "0"], "--iterations"),
        (base + ["--problems", "0"], "--problems"),
        (base + ["--turns", "0"], "--turns"),
        (base + ["--best-of", "0"], "--best-of"),
        (base + ["--temperature", "-1"], "--temperature"),
        (base + ["--tau", "0"], "--tau"),
        (base + ["--epochs", "0"], "--epochs"),
        (base + ["--lr", "-1"], "--lr"),
        (base + ["--batch-size", "0"], "--batch-size"),
        (base + ["--engine-batch", "0"], "--engine-batch"),
        (base + ["--replay", "-1"], "--replay"),
        (base + ["--recipe", '{"replay_levels": ["legendary"]}'], "replay_levels"),
        (base + ["--recipe", '{"solver_attempts": -1}'], "solver_attempts"),
        (base + ["--recipe", '{"solver_levels": ["legendary"]}'], "solver_levels"),
        (base + ["--recipe", '{"level": ["easy", "legendary"]}'], "level"),
        (base + ["--recipe", '{"solver_right": 1.5}'], "solver_right"),
        (base + ["--recipe", '{"later": -0.5}'], "later"),
        (base + ["--recipe", '{"later_wrong": 2}'], "later_wrong"),
        (base + ["--recipe", '{"levels": ["easy"]}'], "levels"),  # a typo is refused, not ignored
        (base + ["--recipe", str(tmp_path / "none.json")], "cannot be read"),
        (base + ["--later", "0.5"], "unrecognized arguments: --later"),  # the synthetic recipe's knob, not a flag
        (base + ["--criterion", "most"], "--criterion"),
        (base + ["--dataset", "imagenet"], "--dataset"),
        (base + ["--teacher-base-url", "ftp://x", "--source", "teacher"], "--teacher-base-url"),
        (base + ["--anchor", "-1"], "--anchor"),
        (base + ["--anchor", "nan"], "--anchor"),
        (base + ["--anchor-model", "/tmp"], "not a model directory"),
        (base + ["--eval-limit", "-1"], "--eval-limit"),
        (base + ["--seed", "-1"], "--seed"),
        (base + ["--grad-accum", "0"], "--grad-accum"),
        (base + ["--fsdp", "--lora-r", "4"], "--fsdp"),
        (base + ["--teacher", "/tmp"], "not a model directory"),
        (base + ["--source", "teacher"], "--teacher"),
        (["train", "rise", "--model", "/tmp", "--out", str(tmp_path / "r")], "not a model directory"),
        (["train", "rise", "--model", str(ROOT / "models" / "base-synth"), "--out", "/proc/nope"], "/proc/nope"),
    ])


@pytest.mark.parametrize("kind,text", [
    (cli_args.positive_int, "0"), (cli_args.positive_int, "1.5"), (cli_args.non_negative_int, "-1"),
    (cli_args.positive_float, "0"), (cli_args.positive_float, "inf"), (cli_args.non_negative_float, "-0.1"),
    (cli_args.temperature, "11"), (cli_args.probability, "0"), (cli_args.share, "-0.1"), (cli_args.share, "1.01"), (cli_args.port, "65536"), (cli_args.seed, str(2**63)),
    (cli_args.log_level, "trace"), (cli_args.readable_file, "/nonexistent"), (cli_args.model_dir, "/tmp"),
])
def test_types_refuse(kind, text):
    with pytest.raises(argparse.ArgumentTypeError):
        kind(text)


def test_writable_dir_is_created_and_checked(tmp_path):
    assert cli_args.writable_dir(str(tmp_path / "a" / "b")) == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir() and not list((tmp_path / "a" / "b").iterdir())  # the probe is gone
    (tmp_path / "f").write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="not a directory"):
        cli_args.writable_dir(str(tmp_path / "f"))


def test_training_arguments_are_parsed_without_torch():
    """app/training/args.py refuses a bad value before torch is imported (its promise; a new import of
    the model sizes once pulled in transformers and torch, and a refusal took 10 s instead of 2)."""
    code = ("import sys; from app.training.args import parse_base, parse_rise; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr[-2000:])
