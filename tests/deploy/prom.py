"""A real Prometheus for tests: Debian's `prometheus` scraping live rise-serve processes every second
with the shipped rules (deploy/prometheus/alerts.yml), evaluated every second; and the dashboard's
PromQL with Grafana's variables filled in as Grafana would."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "rise-serve.json"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL),
    reason="PROMETHEUS NOT INSTALLED: `apt-get install prometheus` (make test does it where it can); "
           "the real-Prometheus tests did not run")


class Prom:
    """The HTTP API of a running Prometheus."""

    def __init__(self, api: str, log: Path) -> None:
        self.api, self.log = api, log

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """An instant query's result; fails the test (with Prometheus's error) if the query errs."""
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        body = httpx.get(f"{self.api}/query", params=params, timeout=10).json()
        assert body["status"] == "success", f"{expr}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]["result"]

    def value(self, expr: str, at: float | None = None) -> float | None:
        result = self.query(expr, at)
        return float(result[0]["value"][1]) if result else None

    def rules(self) -> list[dict]:
        return [r for g in httpx.get(f"{self.api}/rules", timeout=10).json()["data"]["groups"] for r in g["rules"]]

    def alert_states(self) -> dict[str, str]:
        return {r["name"]: r["state"] for r in self.rules() if r["type"] == "alerting"}

    def wait(self, predicate, timeout: float = 60, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}: {self.log.read_text()[-2000:]}")


@contextmanager
def running_prometheus(tmp_path: Path, targets: list[str]):
    """Prometheus on a free port scraping `targets` (host:port) as job rise-serve, with the shipped
    config's globals and the shipped rules; stopped (by its PID) on exit."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    config["scrape_configs"] = [{"job_name": "rise-serve", "static_configs": [{"targets": targets}]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port, log = free_port(), tmp_path / "prom.log"
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    prom = Prom(f"http://127.0.0.1:{port}/api/v1", log)
    try:
        prom.wait(lambda: len(prom.query('up{job="rise-serve"} == 1')) == len(targets), what="the first scrape")
        yield prom
    finally:
        proc.terminate()
        proc.wait(10)


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panel_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in dashboard()["panels"] for t in p["targets"]]


def grafana(expr: str, model: str, window: str = "1h", rate_interval: str = "1m") -> str:
    """`expr` with Grafana's variables filled in: `$model_name` (one model selected), `$__range`
    (the dashboard's time range) and `$__rate_interval`."""
    out = expr.replace("$model_name", model).replace("$__rate_interval", rate_interval)
    return out.replace("$__range", window).replace("$__interval", "15s")
