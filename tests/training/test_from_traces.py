"""From served traffic to weights, on the shipped model: serve with traces on -> requests ->
feedback -> `rise traces export` -> a small RISE iteration from the traces -> a model that loads.
And the labels' rules (reference, rating 1, rating -1) and the arguments' checks.

    .venv/bin/python -m pytest -q tests/training/test_from_traces.py
"""

import asyncio
import json
import subprocess
import sys

import httpx
import pytest

from app.engines.base import SamplingParams
from app.tasks import synthetic
from app.training.args import parse_rise
from app.training.from_traces import load_traces
from tests.servers import ROOT, start_server, stop_server

SECRET_FREE = "no reference here"


def export(url: str, out, *flags) -> str:
    r = subprocess.run([sys.executable, "-m", "app.cli", "traces", "export", "--url", url, "--out", str(out), *flags],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return out.read_text()


def test_served_traffic_becomes_a_model_that_loads(tmp_path, model_path):
    db = tmp_path / "traces.db"
    url = f"sqlite:///{db}"
    proc, base, _ = start_server({"RISE_TRACES_URL": url, "RISE_TRACES_KEEP_REFERENCES": "true"})
    problems = synthetic.problems(77, 5, synthetic.LEVELS["expert"], "train")
    try:
        ids = []
        for i, p in enumerate(problems):  # the second under the gsm8k task (the request's own), the rest RISE_TASK's
            r = httpx.post(f"{base}/v1/refine", json={"question": p.question, "max_turns": 2, "temperature": 0.8,
                                                      "seed": 3, "max_tokens": 80} | ({"task": "gsm8k"} if i == 1 else {}),
                           timeout=120)
            assert r.status_code == 200
            ids.append(r.json()["id"])
        labels = [{"reference": problems[0].answer, "rating": -1}, {"reference": problems[1].answer},
                  {"rating": 1}, {"rating": -1, "comment": "wrong"}]  # the fifth stays unlabelled
        for trace_id, body in zip(ids, labels):
            assert httpx.post(f"{base}/v1/refinements/{trace_id}/feedback", json=body, timeout=30).status_code == 200
    finally:
        assert stop_server(proc) == 0

    plain = export(url, tmp_path / "all.jsonl")
    assert len(plain.splitlines()) == 5 and '"reference"' not in plain
    labelled = export(url, tmp_path / "data.jsonl", "--labelled-only")
    lines = [json.loads(x) for x in labelled.splitlines()]
    assert [x["id"] for x in lines] == ids[:4]
    assert lines[0]["reference"] == problems[0].answer and lines[2]["reference"] is None
    assert [x["task"] for x in lines] == ["synthetic", "gsm8k", "synthetic", "synthetic"]  # what each is scored with
    traced = load_traces(tmp_path / "data.jsonl")
    assert len(traced) == 4 and all(t.rollouts and len(t.rollouts[0]) == 2 for t in traced)

    from app.training.rise import main

    out = tmp_path / "model"
    assert main(["--model", str(model_path), "--out", str(out), "--from-traces", str(tmp_path / "data.jsonl"),
                 "--iterations", "1", "--epochs", "1", "--turns", "2", "--best-of", "4", "--batch-size", "8"]) == 0
    [it] = json.loads((out / "iterations.json").read_text())
    c = it["collect"]
    assert c["traces"] == 4 and c["problems"] + c["skipped"] == 4 and c["problems"] >= 3
    assert c["turns"] == 2 * c["problems"] and c["examples"] > 0 and it["train"]["steps"] >= 1

    from app.engines.hf import HFEngine

    async def answer():
        e = HFEngine(out)
        try:
            return await e.generate([[{"role": "user", "content": problems[0].question}]], SamplingParams(max_tokens=60))
        finally:
            await e.aclose()

    [[completion]] = asyncio.run(answer())
    assert completion.text.strip()


def test_labels_become_references(tmp_path):
    rows = [{"id": "a", "question": "q1", "final_answer": "5", "reference": "6", "feedback": {"rating": -1},
             "turns": [{"text": "t"}]},
            {"id": "b", "question": "q2", "final_answer": "7", "feedback": {"rating": 1}, "turns": [{"text": "t"}]},
            {"id": "c", "question": "q3", "final_answer": "8", "feedback": {"rating": -1}, "turns": []},
            {"id": "d", "question": "q4", "final_answer": "9", "feedback": None, "turns": [{"text": "t"}]},
            {"id": "e", "question": "q5", "final_answer": None, "feedback": {"rating": 1, "comment": "x"},
             "choices": [{"turns": [{"text": "x"}]}, {"turns": [{"text": "y"}, {"text": "z"}]}]}]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    got = {t.id: t for t in load_traces(path)}
    assert set(got) == {"a", "b", "c", "e"}  # d has no label
    assert got["a"].reference == "6" and got["c"].rejected == {"8"} and got["b"].rejected == set()
    assert got["e"].rollouts == [["x"], ["y", "z"]]


@pytest.mark.parametrize("content,extra,message", [
    ('{"id": "a", "question": "q", "feedback": null}\n', [], "no labelled trace"),
    ("not json\n", [], "not a trace"),
    ('{"question": "q", "reference": "1"}\n', ["--source", "solver"], "self or teacher"),
    ('{"id": "rr-old", "question": "q", "reference": "1"}\n', [],
     "cannot score trace rr-old (line 1) records no task (exported before traces recorded their task): pass --task"),
    ('{"id": "rr-a", "question": "q", "reference": "1", "task": "synthetic"}\n'
     '{"id": "rr-b", "question": "q", "reference": "seventy", "task": "gsm8k"}\n', [],
     "cannot score trace rr-b (line 2): its reference 'seventy' is not an answer of task gsm8k"),
    ('{"id": "rr-c", "question": "q", "reference": "1", "task": "chess"}\n', [],
     "rr-c (line 1) was served under task 'chess', which this version cannot score"),
    ('{"id": "rr-d", "question": "q", "reference": "1"}\n', ["--dataset", "gsm8k"], "replaces --dataset"),
    ('{"id": "rr-e", "question": "q", "reference": "1", "task": "synthetic"}\n', ["--replay", "1"], "traces have none"),
])
def test_bad_trace_files_are_refused_before_training(tmp_path, model_path, capsys, content, extra, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content)
    with pytest.raises(SystemExit) as e:
        parse_rise(["--model", str(model_path), "--out", str(tmp_path / "o"), "--from-traces", str(path), *extra])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_traces_without_a_task_are_scored_under_the_one_named(tmp_path, model_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "rr-old", "question": "q", "reference": "#### 1,000"}\n'
                    '{"id": "rr-new", "question": "q", "reference": "3", "task": "synthetic"}\n')
    a = parse_rise(["--model", str(model_path), "--out", str(tmp_path / "o"), "--from-traces", str(path),
                    "--task", "gsm8k"])
    assert [(t.task, t.reference) for t in a.traced] == [("gsm8k", "1000"), ("synthetic", "3")]  # its own wins
