"""From served traffic to a served adapter, end to end with real processes: a GSM8K-format JSON-lines
file of synthetic-level problems (`... #### N` answers) -> its questions served with traces on
(task gsm8k) -> feedback with each reference -> `rise traces export --labelled-only` -> `rise train
rise --from-traces ... --lora-r 8 --source teacher`, the teacher a second `rise serve` behind its API
key (the RISE paper's gpt-3.5 role) -> `rise serve --lora` -> a request through the adapter with the
official openai client.

    .venv/bin/python -m pytest -q tests/training/test_lora_end_to_end.py
"""

import json
import os
import subprocess
import sys

import httpx
import openai
import pytest

from app.tasks import synthetic
from tests.conftest import BASE_MODEL
from tests.servers import ROOT, start_server, stop_server

TEACHER_KEY = "k-teacher-0123456789abcdef"


def _rise(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, env={**os.environ, **(env or {})})
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_traffic_to_a_trained_adapter_to_a_served_adapter(tmp_path, model_path):
    problems = synthetic.problems(5, 6, synthetic.LEVELS["medium"], "train")
    rows = [{"question": p.question, "answer": f"{p.solution}\n#### {p.answer}"} for p in problems]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    # 1. traffic on the student (the base model), traces on, then feedback with each row's reference
    store = f"sqlite:///{tmp_path / 'traces.db'}"
    proc, url, _ = start_server({"RISE_TRACES_URL": store, "RISE_TRACES_KEEP_REFERENCES": "true", "RISE_TASK": "gsm8k"},
                                args=["--model", str(BASE_MODEL)])
    try:
        for row in rows:
            r = httpx.post(f"{url}/v1/refine", json={"question": row["question"], "max_turns": 2, "temperature": 0.8,
                                                     "seed": 1, "max_tokens": 80}, timeout=120)
            assert r.status_code == 200 and r.json()["model"] == BASE_MODEL.name
            reference = row["answer"].rsplit("#### ", 1)[1]
            fb = httpx.post(f"{url}/v1/refinements/{r.json()['id']}/feedback", json={"reference": reference}, timeout=30)
            assert fb.status_code == 200
    finally:
        assert stop_server(proc) == 0
    _rise("traces", "export", "--url", store, "--out", str(tmp_path / "data.jsonl"), "--labelled-only")
    exported = [json.loads(x) for x in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert len(exported) == 6 and {x["task"] for x in exported} == {"gsm8k"}

    # 2. a LoRA adapter from the traces, improved turns from a teacher endpoint (the shipped RISE model)
    teacher, teacher_url, _ = start_server({"RISE_API_KEYS": TEACHER_KEY}, args=["--model", str(model_path)])
    out = tmp_path / "adapter"
    try:
        r = _rise("train", "rise", "--model", str(BASE_MODEL), "--out", str(out), "--from-traces",
                  str(tmp_path / "data.jsonl"), "--lora-r", "8", "--source", "teacher", "--teacher-base-url",
                  f"{teacher_url}/v1", "--teacher-model", model_path.name, "--best-of", "2", "--turns", "2",
                  "--iterations", "1", "--epochs", "1", "--batch-size", "8", "--max-tokens", "80",
                  env={"RISE_TEACHER_API_KEY": TEACHER_KEY})
    finally:
        stop_server(teacher)
    [it] = json.loads((out / "iterations.json").read_text())
    assert it["collect"]["problems"] == 6 and it["collect"]["examples"] > 0 and it["train"]["steps"] >= 1
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    summary = r.stdout.strip().splitlines()[-1]
    assert summary.startswith("rise train rise: 6 problems") and f"--lora adapter={out.resolve()}" in summary

    # 3. the adapter served beside its base, chosen by `model`
    proc, url, _ = start_server({"RISE_TASK": "gsm8k"}, args=["--model", str(BASE_MODEL), "--lora", f"mine={out}"])
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert [(m.id, getattr(m, "parent", None)) for m in client.models.list().data] == \
            [(BASE_MODEL.name, None), ("mine", BASE_MODEL.name)]
        reply = client.chat.completions.create(model="mine", messages=[{"role": "user", "content": rows[0]["question"]}],
                                               temperature=0, max_tokens=80, extra_body={"rise": {"max_turns": 2}})
        assert reply.model == "mine" and reply.choices[0].message.content.strip()
    finally:
        assert stop_server(proc) == 0
