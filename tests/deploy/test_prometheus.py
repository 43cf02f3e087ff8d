"""A real Prometheus scrapes a running rise-serve; promtool checks the shipped config and rules."""

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.servers import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL),
    reason="PROMETHEUS NOT INSTALLED: `apt-get install prometheus` (make test does it where it can); "
           "the real-Prometheus tests did not run")


@needs_prometheus
def test_promtool_accepts_the_shipped_config_and_rules():
    r = subprocess.run([PROMTOOL, "check", "rules", str(DEPLOY / "alerts.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", str(DEPLOY / "prometheus.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_prometheus
def test_prometheus_scrapes_rise_serve_series(server, model_name, tmp_path):
    target = server.removeprefix("http://")
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [str(DEPLOY / "alerts.yml")]
    config["scrape_configs"] = [{"job_name": "rise-serve", "static_configs": [{"targets": [target]}]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prom.log").open("w"))
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"
        for _ in range(3):
            assert httpx.post(f"{server}/v1/refine", json={"question": q, "reference": "40"}).status_code == 200
        deadline = time.monotonic() + 60
        series = []
        while time.monotonic() < deadline and not series:
            time.sleep(1)
            try:
                r = httpx.get(f"{api}/query", params={"query": f'rise_refinements_total{{model_name="{model_name}",mode="oracle"}}'})
                series = r.json()["data"]["result"] if r.status_code == 200 else []
            except httpx.HTTPError:
                pass
        assert series, (tmp_path / "prom.log").read_text()[-2000:]
        assert float(series[0]["value"][1]) >= 3
        up = httpx.get(f"{api}/query", params={"query": 'up{job="rise-serve"}'}).json()["data"]["result"]
        assert up and up[0]["value"][1] == "1"
        groups = httpx.get(f"{api}/rules").json()["data"]["groups"]
        assert {r["name"] for g in groups for r in g["rules"]} >= {"RiseServeHighErrorRate", "RiseServeHighLatencyP99"}
    finally:
        proc.terminate()
        proc.wait(10)
