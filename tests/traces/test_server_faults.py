"""Real rise-serve processes over a trace store that fails for real (issue 19): the store on a
read-only file system, on a full tmpfs, locked by another writer, a PostgreSQL stopped mid-load
and restarted. Every refinement is still answered, `/ready` stays 200 and says the store is
degraded, and lost traces are counted with their reason. Several servers writing one SQLite file,
and several writing one PostgreSQL, lose nothing they acknowledged; retention holds under load.

    .venv/bin/python -m pytest -q -rs tests/traces/test_server_faults.py
"""

import re
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from app.traces.store import TraceStore
from tests.pg import wait_until
from tests.servers import start_server, stop_server
from tests.traces.faults import Tmpfs, locked
from tests.traces.rows import stored_ids

Q = "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?"
FAST = {"question": Q, "max_turns": 1, "max_tokens": 16}


def serve(url: str, **env):
    return start_server({"RISE_TRACES_URL": url, "RISE_LOG_LEVEL": "warning", **{k.upper(): str(v) for k, v in env.items()}})


def ask(base: str, n: int, workers: int = 4) -> list[str]:
    """`n` refinements; each must be answered (200); returns their ids."""
    def one(_):
        r = httpx.post(f"{base}/v1/refine", json=FAST, timeout=120)
        assert r.status_code == 200, r.text
        return r.json()["id"]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def dropped(base: str) -> dict[str, float]:
    """The drop reasons counted so far (every reason is exported from the start, at 0)."""
    text = httpx.get(f"{base}/metrics").text
    found = re.finditer(r'^rise_traces_dropped_total\{reason="(\w+)"\} (\S+)', text, re.M)
    return {m[1]: float(m[2]) for m in found if float(m[2])}


def written(base: str) -> float:
    m = re.search(r"^rise_traces_written_total (\S+)", httpx.get(f"{base}/metrics").text, re.M)
    return float(m[1]) if m else 0.0


def degraded(base: str, reason: str | None = None) -> bool:
    r = httpx.get(f"{base}/ready")
    assert r.status_code == 200  # the store never turns traffic away
    t = r.json()["traces"]
    return t["status"] == "degraded" and (reason is None or t.get("reason") == reason or reason in t["dropped"])


def test_a_read_only_store_costs_no_refinement():
    fs = Tmpfs(2048)
    try:
        url = f"sqlite:///{fs.path / 'traces.db'}"
        s = TraceStore(url)
        s.create()
        s.close()
        fs.readonly()
        proc, base, _ = serve(url, rise_traces_retry_s=0.3)
        try:
            ask(base, 4)
            assert wait_until(lambda: dropped(base).get("readonly", 0) == 4, 30), dropped(base)
            assert degraded(base, "readonly")
        finally:
            stop_server(proc)
    finally:
        fs.close()


def test_a_full_disk_costs_no_refinement_and_writes_resume():
    fs = Tmpfs(1024)
    try:
        url = f"sqlite:///{fs.path / 'traces.db'}"
        proc, base, _ = serve(url, rise_traces_retry_s=0.3)
        try:
            first = ask(base, 1)
            assert wait_until(lambda: first[0] in stored_ids(url))
            fs.fill()
            lost = ask(base, 30)
            assert wait_until(lambda: sum(dropped(base).values()) + written(base) == 31, 60), dropped(base)
            assert dropped(base).get("full", 0) > 0 and degraded(base)
            fs.unfill()
            after = ask(base, 2)
            assert wait_until(lambda: set(after) <= stored_ids(url), 30)
            assert len(stored_ids(url) & set(lost)) + sum(dropped(base).values()) == len(lost)  # each stored or counted
        finally:
            stop_server(proc)
    finally:
        fs.close()


def test_a_store_locked_by_another_writer_costs_no_refinement(tmp_path):
    db = tmp_path / "traces.db"
    url = f"sqlite:///{db}"
    TraceStore(url).create()
    proc, base, _ = serve(url, rise_traces_retry_s=0.5)
    try:
        with locked(db):
            ask(base, 3)
            assert wait_until(lambda: dropped(base).get("locked", 0) == 3, 30), dropped(base)
            assert degraded(base, "locked")
        after = ask(base, 2)
        assert wait_until(lambda: set(after) <= stored_ids(url), 30)
        assert "reason" not in httpx.get(f"{base}/ready").json()["traces"]  # writing again
    finally:
        stop_server(proc)


def test_postgres_stopped_mid_load_loses_nothing_acknowledged(postgres, pg_url):
    proc, base, _ = serve(pg_url, rise_traces_retry_s=120)
    acked: list[str] = []
    try:
        acked += ask(base, 3)
        stop_load = threading.Event()

        def load():
            while not stop_load.is_set():
                acked.extend(ask(base, 2, workers=2))
        t = threading.Thread(target=load)
        t.start()
        try:
            assert wait_until(lambda: len(acked) >= 7, 120)
            postgres.stop()
            n = len(acked)
            assert wait_until(lambda: len(acked) >= n + 4, 120)  # answered while the database is down
            assert wait_until(lambda: degraded(base, "unavailable"), 30)
            postgres.start()
        finally:
            stop_load.set()
            t.join()
            postgres.start()
        assert wait_until(lambda: set(acked) <= stored_ids(pg_url), 120), len(set(acked) - stored_ids(pg_url))
        assert not dropped(base)
    finally:
        stop_server(proc)


def test_several_servers_writing_one_sqlite_file_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    servers = [serve(url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            acked = [i for ids in pool.map(lambda s: ask(s[1], 15, workers=3), servers) for i in ids]
        assert len(set(acked)) == 45
        assert wait_until(lambda: set(acked) <= stored_ids(url), 60), len(set(acked) - stored_ids(url))
        assert all(not dropped(base) for _, base, _ in servers)
        with sqlite3.connect(tmp_path / "traces.db") as c:
            assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        for proc, _, _ in servers:
            stop_server(proc)


def test_several_servers_writing_one_postgres_lose_nothing(postgres, pg_url):
    servers = [serve(pg_url) for _ in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            acked = [i for ids in pool.map(lambda s: ask(s[1], 15, workers=3), servers) for i in ids]
        assert wait_until(lambda: set(acked) <= stored_ids(pg_url), 60)
        assert all(not dropped(base) for _, base, _ in servers)
    finally:
        for proc, _, _ in servers:
            stop_server(proc)


def test_retention_holds_under_load(tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    proc, base, _ = serve(url, rise_traces_max_rows=10)
    try:
        ask(base, 30, workers=6)
        newest = ask(base, 1)[0]
        assert wait_until(lambda: written(base) == 31, 60)
        assert wait_until(lambda: len(stored_ids(url)) == 10, 30)  # counted on insert, pruned right after
        kept = stored_ids(url)
        assert len(kept) == 10 and newest in kept and not dropped(base)  # the oldest went first
    finally:
        stop_server(proc)
