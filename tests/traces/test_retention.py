"""Retention is fair per key and spares labelled rows (issue 26, item 10), with two real servers
pruning one real PostgreSQL at once: one key's flood of cheap requests costs that key its own
oldest unlabelled traces, never another key's traces nor anyone's labels, and the row count
settles at RISE_TRACES_MAX_ROWS with no write dropped and no retention error (deadlock) logged.

    .venv/bin/python -m pytest -q -rs tests/traces/test_retention.py
"""

import hashlib
import re
from concurrent.futures import ThreadPoolExecutor

import httpx

from app.traces.store import TraceStore
from tests.pg import wait_until
from tests.servers import start_server, stop_server

KEYS = ("k-retention-alpha-0123", "k-retention-beta-98765")
A, B = ({"Authorization": f"Bearer {k}"} for k in KEYS)
ID_A, ID_B = (hashlib.sha256(k.encode()).hexdigest()[:12] for k in KEYS)
CAP = 6
FAST = {"question": "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?", "max_turns": 1,
        "max_tokens": 16}


def refine(base: str, headers: dict) -> str:
    r = httpx.post(f"{base}/v1/refine", json=FAST, headers=headers, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def label(base: str, headers: dict, trace_id: str) -> None:
    r = httpx.post(f"{base}/v1/refinements/{trace_id}/feedback", json={"rating": 1}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=30).text
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)", text, re.M))


def stored(url: str) -> dict[str, dict]:
    s = TraceStore(url)
    try:
        return {r["id"]: r for r in s.rows()}
    finally:
        s.close()


def test_two_servers_pruning_one_postgres_keep_other_keys_and_labels(pg_url):
    env = {"RISE_TRACES_URL": pg_url, "RISE_TRACES_MAX_ROWS": str(CAP), "RISE_API_KEYS": ",".join(KEYS),
           "RISE_LOG_LEVEL": "warning"}
    servers = [start_server(env) for _ in range(2)]
    (_, one, log1), (_, two, log2) = servers
    try:
        a = [refine(one, A), refine(two, A)]
        label(one, A, a[0])
        b_labelled = refine(two, B)
        label(two, B, b_labelled)
        with ThreadPoolExecutor(6) as pool:  # key b floods both servers at once
            flood = list(pool.map(lambda i: refine((one, two)[i % 2], B), range(30)))
        total = len(a) + 1 + len(flood)
        assert wait_until(lambda: metric(one, "rise_traces_written_total") + metric(two, "rise_traces_written_total")
                          == total, 60)
        assert wait_until(lambda: len(stored(pg_url)) == CAP, 30), len(stored(pg_url))
        kept = stored(pg_url)
        assert set(a) <= set(kept), "key b's traffic evicted key a's traces"
        assert b_labelled in kept and kept[b_labelled]["fb_rating"] == 1, "a labelled trace was evicted"
        assert kept[a[0]]["fb_rating"] == 1 and sum(r["key_id"] == ID_B for r in kept.values()) == CAP - 2
        assert all(metric(base, "rise_traces_dropped_total") == 0 for base in (one, two))
        logs = log1.read_text() + log2.read_text()
        assert "deadlock" not in logs.lower() and "retention" not in logs, logs[-2000:]
    finally:
        for proc, _, _ in servers:
            stop_server(proc)
