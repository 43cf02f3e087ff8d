"""The dashboard's own PromQL, run against a real Prometheus scraping a live server: every panel's
expression evaluates, and "Accuracy by turn" is right when requests ask for different K.

    .venv/bin/python -m pytest -q tests/deploy/test_dashboard_queries.py
"""

import httpx

from tests.deploy.prom import grafana, needs_prometheus, panel_exprs, running_prometheus

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


def refine(server, max_turns: int) -> dict:
    r = httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "31", "max_turns": max_turns}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def oracle_total(prom, model) -> float | None:
    return prom.value(f'sum(rise_refinements_total{{model_name="{model}",mode="oracle"}})')


def served_total(server, model) -> float:
    from tests.api.test_metrics import get, scrape

    return get(scrape(server), "rise_refinements_total", model_name=model, mode="oracle")


@needs_prometheus
def test_every_panel_expression_evaluates(server, model_name, tmp_path):
    refine(server, 2)
    with running_prometheus(tmp_path, [server.removeprefix("http://")]) as prom:
        refine(server, 2)
        prom.wait(lambda: oracle_total(prom, model_name) == served_total(server, model_name), what="the traffic")
        for title, expr in panel_exprs():
            prom.query(grafana(expr, model_name))  # fails with Prometheus's error if the query errs
        names = {r["name"] for r in prom.rules()}
        assert names, "no rules loaded"


@needs_prometheus
def test_accuracy_by_turn_is_right_with_mixed_k(server, model_name, tmp_path):
    """K = 3, 3 and 5, all solved by turn 2: the panel reads 100% at turns 1 to 5, and shows no turn
    that no request was allowed to reach."""
    [expr] = [e for title, e in panel_exprs() if title.lower().startswith("accuracy by turn")]
    refine(server, 5)  # every turn series up to 5 exists before Prometheus's first scrape
    with running_prometheus(tmp_path, [server.removeprefix("http://")]) as prom:
        start = prom.query(f'timestamp(rise_build_info{{model_name="{model_name}"}})')
        first = float(start[0]["value"][1])
        for k in (3, 3, 5):
            out = refine(server, k)
            solved = [t["turn"] for t in out["turns"] if t["correct"]]
            assert solved and solved[0] <= 2, out  # the premise: solved by turn 2
        want = served_total(server, model_name)
        prom.wait(lambda: oracle_total(prom, model_name) == want, what="the mixed-K traffic")
        last = float(prom.query(f'timestamp(rise_build_info{{model_name="{model_name}"}})')[0]["value"][1])
        # the window is exactly the scrapes since the first one: no extrapolation at either edge
        result = prom.query(grafana(expr, model_name, window=f"{round((last - first) * 1000)}ms"), at=last)
    by_turn = {r["metric"]["turn"]: float(r["value"][1]) for r in result}
    assert sorted(by_turn) == ["1", "2", "3", "4", "5"], by_turn
    assert all(abs(v - 1.0) < 1e-9 for v in by_turn.values()), by_turn
