"""The deployment files parse, and every PromQL expression names only metrics the service exports."""

import json
import re
from pathlib import Path

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "rise-serve.json"
METRIC = re.compile(r"\b(rise_[a-z0-9_]+)")


def exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    out = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    out += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    out += [v["query"]["query"] for v in dash["templating"]["list"]]
    return out


def test_dashboard_is_import_ready_with_a_model_variable():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["title"] and len(dash["panels"]) >= 10
    assert [v["name"] for v in dash["templating"]["list"]] == ["model_name"]
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("throughput", "latency", "turns", "accuracy by turn", "flow", "vote", "tokens", "queue", "errors",
                  "shed", "traces written and dropped", "verifier outcomes", "prefix-cache hit rate", "ready"):
        assert topic in titles
    assert all("$model_name" in t["expr"] for p in dash["panels"] for t in p["targets"])


def test_yaml_files_parse():
    for path in DEPLOY.rglob("*.y*ml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(d for d in docs), path
    kinds = {d["kind"] for p in (DEPLOY / "k8s").glob("*.yaml") for d in yaml.safe_load_all(p.read_text())}
    assert kinds == {"Deployment", "Service", "HorizontalPodAutoscaler", "ServiceMonitor", "StatefulSet", "Secret"}
    dep = yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text()).__next__()
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready" and c["livenessProbe"]["httpGet"]["path"] == "/health"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"rise-serve", "prometheus", "grafana", "vllm", "postgres"} <= set(compose["services"])


def test_dockerfile_runs_as_non_root_with_a_healthcheck():
    text = (DEPLOY.parent / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\w+", text, re.M) and "HEALTHCHECK" in text and "/health" in text
    assert "ARG BASE" in text and "vllm" in text


def test_every_promql_metric_is_exported(server):
    # exercise every code path so each labelled series exists
    q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"
    httpx.post(f"{server}/v1/refine", json={"question": q, "reference": "40", "max_turns": 2}, timeout=60)
    httpx.post(f"{server}/v1/refine", json={"question": q, "reference": "41", "max_turns": 2}, timeout=60)
    httpx.post(f"{server}/v1/refine", json={"question": q, "max_turns": 2}, timeout=60)
    families = list(text_string_to_metric_families(httpx.get(f"{server}/metrics", timeout=30).text))
    exported = {f.name for f in families} | {s.name for f in families for s in f.samples}
    used = {m for e in exprs() for m in METRIC.findall(e)}
    # a labelled series may have no samples yet (no error so far): its family must still be declared
    missing = {m for m in used if m not in exported and re.sub(r"_(total|bucket|sum|count)$", "", m) not in exported}
    assert used and not missing, missing
    assert {"rise_requests_total", "rise_request_duration_seconds_bucket", "rise_oracle_pass_at_turn_total"} <= exported
