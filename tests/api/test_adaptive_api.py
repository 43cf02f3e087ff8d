"""Adaptive compute through the real server: early stopping, confidence votes, token budgets,
their validation and their metrics."""

import httpx
import pytest

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


def _post(server, **body):
    return httpx.post(f"{server}/v1/refine", json={"question": Q, **body}, timeout=120)


def _stops(server, reason):
    text = httpx.get(f"{server}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rise_stop_reasons_total{") and f'reason="{reason}"' in line)


def test_agree_stops_early_and_is_counted(server):
    before = _stops(server, "agreed")
    seen = []
    for seed in range(6):
        r = _post(server, max_turns=5, early_stop="agree", temperature=0.7, seed=seed)
        assert r.status_code == 200
        body = r.json()
        seen.append(body["stop_reason"])
        if body["stop_reason"] == "agreed":
            last = [t["answer"] for t in body["turns"][-2:]]
            assert len(body["turns"]) < 5 and last[0] == last[1] and last[0] is not None
    assert "agreed" in seen
    assert _stops(server, "agreed") == before + seen.count("agreed")


def test_confidence_votes_show_each_samples_confidence(server):
    r = _post(server, max_turns=2, samples_per_turn=3, temperature=1.0, seed=5, aggregation="confidence")
    body = r.json()
    assert r.status_code == 200 and body["aggregation"] == "confidence"
    confidences = [s["confidence"] for t in body["turns"] for s in t["samples"]]
    assert all(0 < c <= 1 for c in confidences)
    assert body["vote_weights"] and sum(body["vote_weights"].values()) == pytest.approx(
        sum(c for t in body["turns"] for s in t["samples"] if s["answer"] is not None for c in [s["confidence"]]),
        rel=1e-4)
    plain = _post(server, max_turns=1).json()
    assert plain["turns"][0]["samples"][0]["confidence"] is None and plain["vote_weights"] is None


def test_a_token_budget_is_never_exceeded(server):
    r = _post(server, max_turns=5, max_total_tokens=40, max_tokens=160)
    body = r.json()
    assert r.status_code == 200 and body["usage"]["completion_tokens"] <= 40
    assert body["stop_reason"] == "budget" and 1 <= len(body["turns"]) < 5


@pytest.mark.parametrize("fields,param", [
    ({"early_stop": "sometimes"}, "early_stop"), ({"early_stop": "agree", "agree_turns": 1}, "agree_turns"),
    ({"early_stop": "agree", "agree_turns": 6, "max_turns": 5}, "agree_turns"),
    ({"max_total_tokens": 0}, "max_total_tokens"), ({"max_total_tokens": 2, "samples_per_turn": 3}, "max_total_tokens"),
    ({"aggregation": "loudest"}, "aggregation")])
def test_bad_adaptive_fields_are_400_naming_the_field(server, model_name, fields, param):
    r = _post(server, **fields)
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    r = httpx.post(f"{server}/v1/chat/completions", timeout=30, json={
        "model": model_name, "messages": [{"role": "user", "content": Q}], "rise": fields})
    assert r.status_code == 400 and param in (r.json()["error"]["param"] or ""), r.text
