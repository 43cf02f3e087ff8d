"""The deploy files checked by the tools that read them, offline: the compose file by `docker
compose config` (or `docker-compose`, or `podman-compose`), for its default and GPU profiles; the
Kubernetes manifests against the Kubernetes API schemas (the `kubernetes-validate` package, strict:
no unknown field); and what they must carry: a trace store on a volume, Prometheus targets that
exist whenever they are scraped, a vLLM server serving the name rise-serve asks for, an image never
fetched from a public registry. A missing tool is a skip that says so.

    .venv/bin/pytest -q -rs -n 0 tests/deploy/test_deploy_validate.py
"""

import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = sorted((DEPLOY / "k8s").glob("*.yaml"))
CRDS = {"monitoring.coreos.com/v1"}  # the Prometheus operator's kinds: no schema in Kubernetes' own


def compose_tool() -> list[str]:
    """The first compose that works here: docker's plugin, docker-compose, podman-compose."""
    for cmd in (["docker", "compose"], ["docker-compose"], ["podman-compose"]):
        if shutil.which(cmd[0]) and subprocess.run([*cmd, "version"], capture_output=True).returncode == 0:
            return cmd
    pytest.skip("!!! no compose tool (docker compose, docker-compose or podman-compose; `make system-deps` "
                "installs docker-compose): deploy/compose.yaml NOT validated")


def compose_config(*profile: str) -> dict:
    p = subprocess.run([*compose_tool(), "-f", str(DEPLOY / "compose.yaml"), *profile, "config"],
                       capture_output=True, text=True, timeout=120, cwd=DEPLOY)
    assert p.returncode == 0, p.stderr
    return yaml.safe_load(p.stdout)


def env(service: dict) -> dict:
    e = service.get("environment") or {}
    return e if isinstance(e, dict) else dict(item.split("=", 1) for item in e)


def test_compose_runs_postgres_on_a_volume_as_the_trace_store():
    config = compose_config()
    assert {"postgres", "rise-serve", "prometheus", "grafana"} <= set(config["services"])
    assert all(config["services"][s]["profiles"] == ["gpu"] for s in ("vllm", "rise-serve-gpu"))  # GPU: its profile only
    pg = config["services"]["postgres"]
    assert any(str(v.get("source") if isinstance(v, dict) else v).startswith("pgdata") for v in pg["volumes"])
    assert "pgdata" in config["volumes"]
    url = urlsplit(env(config["services"]["rise-serve"])["RISE_TRACES_URL"])
    assert url.scheme == "postgresql+psycopg" and url.hostname == "postgres" and url.path == "/" + env(pg)["POSTGRES_DB"]
    assert url.username == env(pg)["POSTGRES_USER"] and url.password == env(pg)["POSTGRES_PASSWORD"]
    assert config["services"]["rise-serve"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_gpu_profile_starts_vllm_serving_what_rise_serve_asks_for():
    services = compose_config("--profile", "gpu")["services"]
    vllm, front = services["vllm"]["command"], services["rise-serve-gpu"]["command"]
    arg = lambda cmd, name: cmd[cmd.index(name) + 1]  # noqa: E731
    assert arg(vllm, "--served-model-name") == arg(front, "--model-name")
    base = urlsplit(arg(front, "--base-url"))
    assert arg(front, "--engine") == "openai" and base.hostname == "vllm" and str(base.port) == arg(vllm, "--port")
    assert services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert "RISE_TRACES_URL" in env(services["rise-serve-gpu"])


def test_prometheus_targets_exist_whenever_they_are_scraped():
    """No static target: each job discovers the compose services by DNS, so a service of a profile
    that is not up is no target (never one that is always down); every name is a compose service,
    on the port it listens on."""
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    ports = {"rise-serve": 8000, "rise-serve-gpu": 8000,
             "vllm": int(services["vllm"]["command"][services["vllm"]["command"].index("--port") + 1])}
    names = set()
    for job in prom["scrape_configs"]:
        assert "static_configs" not in job, job["job_name"]
        for sd in job["dns_sd_configs"]:
            for name in sd["names"]:
                assert name in services and sd["port"] == ports[name], name
                names.add(name)
    assert names == set(ports)
    assert {"rise-serve", "rise-serve-gpu"} <= set(next(j for j in prom["scrape_configs"]
                                                         if j["job_name"] == "rise-serve")["dns_sd_configs"][0]["names"])


def test_k8s_manifests_match_the_kubernetes_schemas():
    kv = pytest.importorskip("kubernetes_validate", reason="!!! kubernetes-validate is not installed (the `test` "
                             "extra): deploy/k8s NOT validated against the Kubernetes schemas")
    checked = 0
    for path in K8S:
        for doc in yaml.safe_load_all(path.read_text()):
            try:
                kv.validate(doc, kv.latest_version(), strict=True)
                checked += 1
            except kv.SchemaNotFoundError:
                assert doc["apiVersion"] in CRDS, (path.name, doc["kind"])
    assert checked >= 6


def test_k8s_image_is_never_fetched_from_a_public_registry_and_traces_are_shared():
    docs = [d for p in K8S for d in yaml.safe_load_all(p.read_text())]
    dep = next(d for d in docs if d["kind"] == "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"].split("/", 1)[0] == "localhost" and not c["image"].endswith(":latest")
    assert c.get("imagePullPolicy") in ("IfNotPresent", "Never")
    ref = next(e for e in c["env"] if e["name"] == "RISE_TRACES_URL")["valueFrom"]["secretKeyRef"]
    secret = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == ref["name"])
    url = urlsplit(secret["stringData"][ref["key"]])
    pg = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == url.hostname)
    assert url.scheme == "postgresql+psycopg" and pg["spec"]["ports"][0]["port"] == url.port
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    assert sts["spec"]["volumeClaimTemplates"] and sts["spec"]["serviceName"] == url.hostname
