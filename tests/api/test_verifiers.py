"""Verifier endpoints end to end (issue 20): a real verifier HTTP server (tests/verifier_server.py)
and a real `rise serve` on the shipped model with RISE_VERIFIERS naming it. Correct stops the loop,
the verifier's feedback follows its turn, a timeout, a 500, garbage and a refused connection each
leave the turn unchecked (the request still succeeds) and are counted in /metrics; parameters and
feedback stay out of the log. A bad RISE_VERIFIERS entry stops `rise serve` with status 2.

    .venv/bin/python -m pytest -q tests/api/test_verifiers.py
"""

import json
import subprocess
import sys

import httpx
import openai
import pytest

from app.refine.feedback import DEFAULT_FEEDBACK
from tests.api.test_metrics import scrape
from tests.servers import ROOT, free_port, start_server, stop_server
from tests.verifier_server import FEEDBACK

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"  # greedy: 31


@pytest.fixture(scope="module")
def served(verifier):
    endpoints = verifier.endpoints()
    endpoints["down"] = {"url": f"http://127.0.0.1:{free_port()}/verify", "timeout_s": 2}  # nothing listens
    proc, url, log = start_server({"RISE_VERIFIERS": json.dumps(endpoints)})
    yield url, log
    stop_server(proc)


def refine(url, **body):
    r = httpx.post(f"{url}/v1/refine", json={"question": Q, "temperature": 0, **body}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_correct_verdict_stops_the_loop(served, verifier):
    url, _ = served
    before = len(verifier.calls)
    body = refine(url, verifier={"name": "judge"}, max_turns=4)
    assert body["stop_reason"] == "correct" and body["final_turn"] == 1 and body["correct"] is True
    assert body["mode"] == "oracle" and body["turns"][0]["checked"] is True and body["turns"][0]["feedback"] is None
    [(path, sent, headers)] = verifier.calls[before:]
    assert path == "/judge" and sent == {"question": Q, "answer": "31", "text": body["turns"][0]["text"], "turn": 1}
    assert headers["Authorization"] == "Bearer verifier-secret"  # the operator's headers go with every call


def test_an_incorrect_verdict_with_feedback_is_the_next_turns_feedback(served, verifier):
    url, _ = served
    before = len(verifier.calls)
    body = refine(url, verifier={"name": "judge", "expected": "5551212"}, max_turns=3)  # params reach the verifier
    assert body["stop_reason"] == "max_turns" and body["correct"] is False and len(body["turns"]) == 3
    assert [t["checked"] for t in body["turns"]] == [True, True, True]
    assert [t["feedback"] for t in body["turns"]] == [FEEDBACK, FEEDBACK, None]  # none after the last turn
    assert body["turns"][0]["samples"][0]["feedback"] == FEEDBACK
    calls = verifier.calls[before:]
    assert [c[1]["turn"] for c in calls] == [1, 2, 3] and all(c[1]["params"] == {"expected": "5551212"} for c in calls)


@pytest.mark.parametrize("name,outcome", [("slow", "timeout"), ("error", "error"), ("garbage", "invalid"),
                                          ("shape", "invalid"), ("down", "error")])
def test_a_verifier_that_fails_leaves_the_turn_unchecked_and_is_counted(served, name, outcome):
    url, _ = served
    before = scrape(url)
    body = refine(url, verifier={"name": name}, max_turns=2)
    assert body["stop_reason"] == "max_turns" and len(body["turns"]) == 2 and body["correct"] is None
    assert [(t["checked"], t["correct"]) for t in body["turns"]] == [(False, None), (False, None)]
    assert body["turns"][0]["feedback"] == DEFAULT_FEEDBACK.format(question=Q)  # as without an oracle
    after = scrape(url)
    assert calls(after, "rise_verifier_calls_total", name=name, outcome=outcome) \
        - calls(before, "rise_verifier_calls_total", name=name, outcome=outcome) == 2
    assert calls(after, "rise_verifier_duration_seconds_count", name=name) \
        - calls(before, "rise_verifier_duration_seconds_count", name=name) == 2


def test_metrics_count_verdicts_by_name_and_outcome(served):
    url, _ = served
    before = scrape(url)
    refine(url, verifier={"name": "judge"}, max_turns=2)
    refine(url, verifier={"name": "wrong"}, max_turns=2)
    after = scrape(url)

    def moved(**labels):
        return calls(after, "rise_verifier_calls_total", **labels) - calls(before, "rise_verifier_calls_total", **labels)

    assert moved(name="judge", outcome="correct") == 1 and moved(name="wrong", outcome="incorrect") == 2
    text = httpx.get(f"{url}/metrics").text
    assert "# TYPE rise_verifier_calls_total counter" in text and "# TYPE rise_verifier_duration_seconds histogram" in text


def test_the_chat_api_takes_a_verifier_in_its_rise_object(served):
    url, _ = served
    client = openai.OpenAI(api_key="none", base_url=f"{url}/v1", max_retries=0)
    model = client.models.list().data[0].id
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": Q}], temperature=0,
                                       extra_body={"rise": {"max_turns": 3, "verifier": {"name": "judge"}}})
    assert r.choices[0].message.content.endswith("The answer is 31.")
    [trace] = r.model_extra["rise"]["choices"]
    assert trace["stop_reason"] == "correct" and trace["mode"] == "oracle" and trace["turns"][0]["checked"] is True
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": Q}],
                                       extra_body={"rise": {"reference": "31", "verifier": {"name": "judge"}}})
    assert e.value.body["param"] == "rise.verifier"


def test_parameters_feedback_and_headers_stay_out_of_the_log(served):
    url, log = served
    refine(url, verifier={"name": "wrong", "expected": "zq-param-mark"}, max_turns=2)
    refine(url, verifier={"name": "judge"}, max_turns=1, feedback="zq-template-mark {question}")
    refine(url, verifier={"name": "contains", "value": "zq-contains-mark"}, max_turns=1)
    text = log.read_text()
    for secret in ("zq-param-mark", "zq-feedback-mark", "zq-template-mark", "zq-contains-mark", "verifier-secret"):
        assert secret not in text, secret


@pytest.mark.parametrize("value,named", [
    ('{"grader": {"url": "ftp://example.com/x"}}', "verifiers.grader.url"),
    ('{"grader": {"url": "http://127.0.0.1:1/v", "timeout_s": 0}}', "verifiers.grader.timeout_s"),
    ('{"grader": {"url": "http://127.0.0.1:1/v", "retries": 3}}', "verifiers.grader.retries"),
    ('{"grader": {"url": "http://127.0.0.1:1/v", "headers": {"X-Key": "a\\nb"}}}', "X-Key"),
    ('{"numeric": {"url": "http://127.0.0.1:1/v"}}', "'numeric'"),
    ('{"bad name!": {"url": "http://127.0.0.1:1/v"}}', "'bad name!'"),
    ('{"grader": "http://127.0.0.1:1/v"}', "verifiers.grader"),
    ('{"grader": ', "not valid JSON"),
    ("/nonexistent/verifiers.json", "neither a JSON object nor a readable file"),
])
def test_rise_serve_exits_2_naming_a_bad_verifiers_entry(value, named):
    r = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())], cwd=ROOT,
                       env={**_env(), "RISE_VERIFIERS": value}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert named in r.stderr, r.stderr[-500:]
    assert "a\\nb" not in r.stderr  # header values are never printed


def test_rise_serve_reads_verifiers_from_a_file(tmp_path, verifier):
    path = tmp_path / "verifiers.json"
    path.write_text(json.dumps({"judge": {"url": f"{verifier.url}/judge"}}))
    proc, url, _ = start_server({"RISE_VERIFIERS": str(path)})
    try:
        assert refine(url, verifier={"name": "judge"}, max_turns=2)["stop_reason"] == "correct"
    finally:
        stop_server(proc)


def calls(samples, metric, **labels) -> float:
    """The sum of `metric`'s samples with these labels (`name` is a label here, so not tests.api.test_metrics.get)."""
    return sum(v for (n, ls), v in samples.items() if n == metric and all(dict(ls).get(k) == x for k, x in labels.items()))


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "RISE_VERIFIERS"}
