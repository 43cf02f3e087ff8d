"""Each built-in check on the shipped model over real HTTP (the session's `rise serve`): a passing
check stops the loop at turn 1, a failing one runs every turn, each turn checked; the request's
feedback template is the next turn's feedback.

    .venv/bin/python -m pytest -q tests/api/test_verifiers_builtin.py
"""

import httpx
import pytest

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"  # greedy: 31

CHECKS = {  # name: (passes, fails) on the greedy answer "23+17=40. 40-9=31. The answer is 31."
    "numeric": ({"target": 31}, {"target": 30, "tolerance": 0.5}),
    "regex": ({"pattern": r"The answer is \d+\.$", "on": "text"}, {"pattern": r"^\d+\.\d+$"}),
    "json_schema": ({"schema": {"type": "integer", "minimum": 0}, "on": "answer"}, {"schema": {"type": "object"}}),
    "contains": ({"value": "40-9=31"}, {"value": "apples", "on": "answer"}),
}


def refine(server, **body):
    r = httpx.post(f"{server}/v1/refine", json={"question": Q, "temperature": 0, **body}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("name", CHECKS)
def test_a_passing_check_stops_at_the_first_turn(server, name):
    body = refine(server, verifier={"name": name, **CHECKS[name][0]}, max_turns=3)
    assert body["stop_reason"] == "correct" and body["final_turn"] == 1 and body["correct"] is True
    assert body["mode"] == "oracle" and body["turns"][0]["checked"] is True


@pytest.mark.parametrize("name", CHECKS)
def test_a_failing_check_runs_every_turn_with_the_requests_feedback(server, name):
    template = "Check your arithmetic once more. {question}"
    body = refine(server, verifier={"name": name, **CHECKS[name][1]}, max_turns=2, feedback=template)
    assert body["stop_reason"] == "max_turns" and body["correct"] is False
    assert [(t["checked"], t["correct"]) for t in body["turns"]] == [(True, False), (True, False)]
    assert body["turns"][0]["feedback"] == template.replace("{question}", Q)
    assert "target" not in body and "verifier" not in body  # parameters are not echoed
