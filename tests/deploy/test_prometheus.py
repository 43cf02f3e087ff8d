"""A real Prometheus scrapes running rise-serve processes; promtool checks the shipped config and
rules and runs the rules' unit tests (tests/deploy/alerts_test.yml); the rules load and evaluate in
Prometheus, and the new alerts fire on a live server's own metrics.

    .venv/bin/python -m pytest -q tests/deploy/test_prometheus.py
"""

import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.deploy.prom import DEPLOY, PROMTOOL, RULES, needs_prometheus, running_prometheus
from tests.servers import free_port, start_server, stop_server

Q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"
ALERTS = {"RiseServeHighErrorRate", "RiseServeHighLatencyP99", "RiseServeDown", "RiseServeNotReady",
          "RiseServeEngineErrors", "RiseServeShedding", "RiseServeTracesDropped"}


@needs_prometheus
def test_promtool_accepts_the_shipped_config_and_rules():
    r = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_prometheus
def test_alert_rules_pass_their_unit_tests():
    """5xx counts API routes only; shedding, dropped traces, /ready false and a down target fire."""
    tests = Path(__file__).with_name("alerts_test.yml")
    r = subprocess.run([PROMTOOL, "test", "rules", str(tests)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_prometheus
def test_prometheus_scrapes_rise_serve_and_every_rule_evaluates(server, model_name, tmp_path):
    with running_prometheus(tmp_path, [server.removeprefix("http://")]) as prom:
        for _ in range(3):
            r = httpx.post(f"{server}/v1/refine", json={"question": Q, "reference": "40"}, timeout=60)
            assert r.status_code == 200, r.text
        query = f'rise_refinements_total{{model_name="{model_name}",mode="oracle"}}'
        prom.wait(lambda: prom.value(query) >= 3, what="the refinements")
        assert prom.value('up{job="rise-serve"}') == 1
        assert {r["name"] for r in prom.rules()} == ALERTS
        # every rule has been evaluated at least once, without error
        prom.wait(lambda: all(r["health"] == "ok" for r in prom.rules()), what="every rule evaluated")
        assert not [r["lastError"] for r in prom.rules() if r.get("lastError")]


@needs_prometheus
def test_shedding_dropped_traces_and_not_ready_fire_on_live_servers(tmp_path):
    """One server sheds (one slot, no queue) and drops traces (its store does not answer); another's
    upstream is down, so its /ready answers 503. Their own metrics put the alerts in pending."""
    dead_store = f"postgresql+psycopg://rise@127.0.0.1:{free_port()}/rise"
    busy, busy_url, _ = start_server({"RISE_MAX_IN_FLIGHT": "1", "RISE_MAX_QUEUE": "0", "RISE_TRACES_URL": dead_store,
                                      "RISE_TRACES_RETRY_S": "0"})
    dead, dead_url, _ = start_server({"RISE_ENGINE": "openai", "RISE_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
                                      "RISE_MODEL_NAME": "dead-upstream"}, wait_ready=False)
    try:
        targets = [u.removeprefix("http://") for u in (busy_url, dead_url)]
        with running_prometheus(tmp_path, targets) as prom:
            codes: list[int] = []

            def one():
                r = httpx.post(f"{busy_url}/v1/refine", json={"question": Q, "max_turns": 4}, timeout=120)
                codes.append(r.status_code)

            for _ in range(3):  # bursts a scrape apart: each burst both sheds and drops traces
                threads = [threading.Thread(target=one) for _ in range(6)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                httpx.get(f"{dead_url}/ready", timeout=30)  # the probe that sets rise_ready
                time.sleep(1.5)
            assert 429 in codes and 200 in codes, codes

            want = ("RiseServeShedding", "RiseServeTracesDropped", "RiseServeNotReady")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                states = prom.alert_states()
                if all(states[a] in ("pending", "firing") for a in want):
                    break
                time.sleep(0.5)
            assert all(states[a] in ("pending", "firing") for a in want), states
            assert states["RiseServeHighErrorRate"] == "inactive", states  # 429s and /ready's 503s page no one
    finally:
        stop_server(busy)
        stop_server(dead)
