"""`/metrics` moves by exactly what the requests did (real server, prometheus-client's parser)."""

import httpx
from prometheus_client.parser import text_string_to_metric_families

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


def scrape(server) -> dict[tuple, float]:
    r = httpx.get(f"{server}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == val for k, val in labels.items()))


def test_counters_and_histograms_move_by_what_requests_did(server, model_name):
    m = model_name
    before = scrape(server)
    ok = httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "31", "max_turns": 4}).json()
    never = httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "4242", "max_turns": 2}).json()
    selfr = httpx.post(f"{server}/v1/refine", json={"question": Q, "max_turns": 3}).json()
    bad = httpx.post(f"{server}/v1/refine", json={"question": ""})
    assert bad.status_code == 400
    after = scrape(server)

    def d(name, **labels):
        return get(after, name, **labels) - get(before, name, **labels)

    assert d("rise_requests_total", model_name=m, route="/v1/refine", status="200") == 3
    assert d("rise_requests_total", model_name=m, route="/v1/refine", status="400") == 1
    assert d("rise_refinements_total", model_name=m, mode="oracle") == 2
    assert d("rise_refinements_total", model_name=m, mode="self") == 1
    assert d("rise_turns_per_request_count", model_name=m, mode="oracle") == 2
    assert d("rise_turns_per_request_sum", model_name=m, mode="oracle") == len(ok["turns"]) + len(never["turns"]) == 3
    assert d("rise_turns_per_request_sum", model_name=m, mode="self") == 3
    assert d("rise_stop_reasons_total", model_name=m, mode="oracle", reason="correct") == 1
    assert d("rise_stop_reasons_total", model_name=m, mode="oracle", reason="max_turns") == 1
    for k in ("1", "2", "3", "4"):
        assert d("rise_oracle_pass_at_turn_total", model_name=m, turn=k) == 1  # solved at turn 1, counted up to K=4
    assert d("rise_turn_duration_seconds_count", model_name=m) == 6
    assert d("rise_time_to_first_token_seconds_count", model_name=m, turn="1") == 3
    assert d("rise_vote_agreement_ratio_count", model_name=m) == 1
    assert d("rise_vote_agreement_ratio_sum", model_name=m) == 1.0  # all three turns agreed
    tokens = sum(r["usage"]["completion_tokens"] for r in (ok, never, selfr))
    assert d("rise_completion_tokens_total", model_name=m) == tokens
    assert d("rise_prompt_tokens_total", model_name=m) == sum(r["usage"]["prompt_tokens"] for r in (ok, never, selfr))
    assert d("rise_engine_batch_size_count", model_name=m) >= 6
    # every prompt went through the embedded engine's prefix cache; later turns reused earlier ones
    assert d("rise_engine_prompt_tokens_total", model_name=m) == d("rise_prompt_tokens_total", model_name=m)
    assert 0 < d("rise_engine_prefix_cache_hit_tokens_total", model_name=m) < d("rise_engine_prompt_tokens_total", model_name=m)
    assert get(after, "rise_engine_prefix_cache_bytes", model_name=m) > 0
    assert get(after, "rise_build_info", model_name=m) == 1
    assert get(after, "rise_requests_in_flight", model_name=m, route="/v1/refine") == 0
    assert ("rise_engine_queue_depth", (("model_name", m),)) in after


def test_no_unbounded_labels(server):
    httpx.post(f"{server}/v1/refine", json={"question": Q + " unique-question-label-probe", "max_turns": 1})
    httpx.get(f"{server}/some/random/path/12345")
    text = httpx.get(f"{server}/metrics").text
    assert "unique-question-label-probe" not in text and "12345" not in text
