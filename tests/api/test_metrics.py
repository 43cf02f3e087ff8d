"""`/metrics` moves by exactly what the requests did (real server, prometheus-client's parser)."""

import ast
import re
import typing
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


def scrape(server) -> dict[tuple, float]:
    r = httpx.get(f"{server}/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return parse(r.text)


def parse(text: str) -> dict[tuple, float]:
    """A /metrics page's samples by (name, sorted labels)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items() if n == name and all(dict(ls).get(k) == val for k, val in labels.items()))


def test_counters_and_histograms_move_by_what_requests_did(server, model_name):
    m = model_name
    before = scrape(server)
    ok = httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "31", "max_turns": 4}, timeout=60).json()
    never = httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "4242", "max_turns": 2},
                       timeout=60).json()
    selfr = httpx.post(f"{server}/v1/refine", json={"question": Q, "max_turns": 3}, timeout=60).json()
    bad = httpx.post(f"{server}/v1/refine", json={"question": ""}, timeout=60)
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
    # all three turns agreed (the sum's difference of floats: earlier tests' ratios such as 2/3 are in both scrapes)
    assert d("rise_vote_agreement_ratio_sum", model_name=m) == pytest.approx(1.0, abs=1e-9)
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
    httpx.post(f"{server}/v1/refine", json={"question": Q + " unique-question-label-probe", "max_turns": 1}, timeout=60)
    httpx.get(f"{server}/some/random/path/12345", timeout=30)
    text = httpx.get(f"{server}/metrics", timeout=30).text
    assert "unique-question-label-probe" not in text and "12345" not in text


OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def metrics_table() -> list[list[str]]:
    """The rows of the metrics table in docs/operations.md, each split into its cells."""
    rows = [line for line in OPERATIONS.read_text().splitlines() if line.startswith("| `rise_")]
    assert rows, f"no metrics table in {OPERATIONS}"
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_metrics_table_lists_every_exported_metric(server):
    """Every `rise_` family on /metrics has a row in docs/operations.md's metrics table, and every row is exported."""
    listed = {re.sub(r"_total$", "", m) for row in metrics_table() for m in re.findall(r"`(rise_[a-z0-9_]+)", row[0])}
    exported = {f.name for f in text_string_to_metric_families(httpx.get(f"{server}/metrics", timeout=30).text)
                if f.name.startswith("rise_") and not f.name.endswith("_created")}
    assert exported - listed == set(), "exported but not in docs/operations.md's table"
    assert listed - exported == set(), "in docs/operations.md's table but not exported"


def emitted_stop_reasons() -> set[str]:
    """Every stop reason the code can emit: the declared `StopReason` values, and (so that a new
    one cannot hide from the declaration) each string the code assigns to `stop_reason`, returns
    from `policy.stop_reason` or passes to `RefineResult.unfinished`."""
    from app.refine.types import StopReason

    app_dir = Path(__file__).resolve().parents[2] / "app"
    found: set[str] = set()
    for path in app_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "stop_reason" for t in node.targets):
                found |= _strings(node.value)
            elif isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == "stop_reason":
                found |= {s for r in ast.walk(node) if isinstance(r, ast.Return) and r.value for s in _strings(r.value)}
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "unfinished" and node.args):
                found |= _strings(node.args[0])
    declared = set(typing.get_args(StopReason))
    assert found - declared == set(), "emitted but not declared in app/refine/types.py's StopReason"
    assert {"correct", "max_turns", "agreed", "budget"} <= found, found  # the scan itself sees the loop
    return declared | found


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_metrics_table_lists_every_stop_reason():
    """`rise_stop_reasons_total`'s row names every `reason` label the code can emit."""
    [row] = [row for row in metrics_table() if row[0].startswith("`rise_stop_reasons_total")]
    listed = set(re.findall(r"`([a-z_]+)`", row[2]))
    assert emitted_stop_reasons() - listed == set(), "stop reasons missing from docs/operations.md's table"


def test_series_exist_at_zero_before_their_first_event(server, model_name):
    """Counters an alert or panel takes a rate of are exported at 0 from the start, so that
    Prometheus sees their first increase (a series born at 5 shows no rate)."""
    s = scrape(server)
    for turn in [str(k) for k in range(1, 10)] + ["10+"]:
        for name in ("rise_oracle_pass_at_turn_total", "rise_oracle_refinements_at_turn_total"):
            assert (name, (("model_name", model_name), ("turn", turn))) in s, (name, turn)
    for reason in ("queue_full", "not_ready"):
        assert ("rise_requests_shed_total", (("model_name", model_name), ("reason", reason))) in s
    for reason in ("queue_full", "locked", "full", "readonly", "unavailable", "error", "shutdown"):
        assert ("rise_traces_dropped_total", (("reason", reason),)) in s


def test_oracle_turn_counters_count_each_request_up_to_its_own_k(server, model_name):
    """Accuracy at turn k = pass_at_turn / refinements_at_turn: a request counts in turn k's
    denominator when its K >= k, solved or not."""
    before = scrape(server)
    httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "31", "max_turns": 3}, timeout=60)
    httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "4242", "max_turns": 2}, timeout=60)
    after = scrape(server)

    def d(name, turn):
        return get(after, name, model_name=model_name, turn=turn) - get(before, name, model_name=model_name, turn=turn)

    assert [d("rise_oracle_refinements_at_turn_total", str(k)) for k in (1, 2, 3, 4)] == [2, 2, 1, 0]
    assert [d("rise_oracle_pass_at_turn_total", str(k)) for k in (1, 2, 3, 4)] == [1, 1, 1, 0]


def test_readiness_is_a_gauge_set_by_each_ready_answer(server, model_name):
    """`rise_ready` is 1 after a 200 from /ready and 0 after a 503 (here: the upstream is down)."""
    from tests.servers import free_port, start_server, stop_server

    assert httpx.get(f"{server}/ready", timeout=30).status_code == 200
    assert scrape(server)[("rise_ready", (("model_name", model_name),))] == 1
    dead = {"RISE_ENGINE": "openai", "RISE_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
            "RISE_MODEL_NAME": "dead-upstream"}
    proc, url, _ = start_server(dead, wait_ready=False)
    try:
        assert httpx.get(f"{url}/ready", timeout=30).status_code == 503
        assert scrape(url).get(("rise_ready", (("model_name", "dead-upstream"),))) == 0
    finally:
        stop_server(proc)


def test_api_routes_and_the_rest_carry_distinct_route_labels(server):
    """The 5xx alert counts `route=~"/v1/.+"` only: probes, docs, the playground and its static
    files carry other route labels."""
    for path in ("/health", "/ready", "/", "/playground.json", "/static/app.js", "/docs", "/openapi.json"):
        httpx.get(f"{server}{path}", timeout=30)
    httpx.post(f"{server}/v1/refine", json={"question": Q, "max_turns": 1}, timeout=60)
    routes = {dict(ls)["route"] for (n, ls) in scrape(server) if n == "rise_requests_total"}
    api = {r for r in routes if r.startswith("/v1/")}
    assert "/v1/refine" in api
    assert {"/health", "/ready", "/", "/playground.json", "/static", "/docs", "/openapi.json"} <= routes - api
