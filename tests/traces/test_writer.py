"""The bounded trace writer against real faults: a full queue drops the newest (counted), a store
locked by another writer is retried then counted as `locked`, a full file system `full`, a
read-only one `readonly`, a stopped PostgreSQL `unavailable` until it is back; every trace
submitted is stored or counted, and retention holds under load.

    .venv/bin/python -m pytest -q -rs tests/traces/test_writer.py
"""

import logging
import threading

from app.traces.store import TraceStore
from app.traces.writer import TraceWriter
from tests.pg import wait_until
from tests.traces.faults import Tmpfs, locked
from tests.traces.rows import row, stored_ids


def writer_for(url: str, **kw) -> TraceWriter:
    kw.setdefault("retry_s", 30.0)
    w = TraceWriter(TraceStore(url, busy_timeout_s=0.2), **kw)
    w.start()
    return w


def test_a_full_queue_drops_the_newest_and_counts_it(tmp_path):
    db = tmp_path / "t.db"
    url = f"sqlite:///{db}"
    TraceStore(url).create()
    w = writer_for(url, cap=3)
    try:
        with locked(db):
            first = row()
            w.submit(first)
            assert wait_until(lambda: w._queue.qsize() == 0)  # the writer holds it, retrying the lock
            rows = [row() for _ in range(5)]
            accepted = [w.submit(r) for r in rows]
            assert accepted == [True, True, True, False, False] and w.dropped["queue_full"] == 2
            assert w.health()["status"] == "degraded"
        assert w.flush(30)
        assert stored_ids(url) == {first["id"], *(r["id"] for r in rows[:3])}
    finally:
        w.close()


def test_a_store_locked_past_the_retry_budget_counts_locked_then_recovers(tmp_path, caplog):
    db = tmp_path / "t.db"
    url = f"sqlite:///{db}"
    TraceStore(url).create()
    w = writer_for(url, retry_s=0.5)
    caplog.set_level(logging.WARNING, "rise.traces")
    try:
        with locked(db):
            lost = [row(reference="4242", keep=True) for _ in range(3)]
            for r in lost:
                w.submit(r)
            assert w.flush(30)
            assert sum(w.dropped.values()) == 3 and set(w.dropped) == {"locked"}
            assert w.health()["reason"] == "locked"
        kept = row()
        w.submit(kept)
        assert w.flush(30) and "reason" not in w.health()
        assert stored_ids(url) == {kept["id"]}
    finally:
        w.close()
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1 and "locked=3" in drops[0].getMessage()  # one line, not one per trace
    assert "4242" not in caplog.text  # never the content of a trace


def test_a_lock_shorter_than_the_retry_budget_loses_nothing(tmp_path):
    db = tmp_path / "t.db"
    url = f"sqlite:///{db}"
    TraceStore(url).create()
    w = writer_for(url, retry_s=30)
    try:
        with locked(db):
            rows = [row() for _ in range(20)]
            for r in rows:
                w.submit(r)
            assert wait_until(lambda: w.health()["reason"] == "locked" if "reason" in w.health() else False)
        assert w.flush(30) and not w.dropped
        assert stored_ids(url) == {r["id"] for r in rows}
    finally:
        w.close()


def test_a_full_file_system_counts_full_and_recovers(tmp_path):
    fs = Tmpfs(1024)
    try:
        url = f"sqlite:///{fs.path / 't.db'}"
        w = writer_for(url, retry_s=0.5)
        w.submit(row())
        assert w.flush(30) and not w.dropped
        fs.fill()
        for _ in range(30):
            w.submit(row(turns=10))
        assert w.flush(60)
        assert w.dropped["full"] > 0 and w.health()["status"] == "degraded"
        fs.unfill()
        after = row()
        w.submit(after)
        assert w.flush(30) and after["id"] in stored_ids(url)
        w.close()
    finally:
        fs.close()


def test_a_read_only_file_system_counts_readonly(tmp_path):
    fs = Tmpfs(1024)
    try:
        url = f"sqlite:///{fs.path / 't.db'}"
        s = TraceStore(url)
        s.create()
        s.close()  # no open file: the remount would be refused as busy
        fs.readonly()
        w = writer_for(url, retry_s=0.3)
        w.submit(row())
        assert w.flush(30) and w.dropped == {"readonly": 1} and w.health()["reason"] == "readonly"
        fs.readonly(False)
        w.close()
    finally:
        fs.close()


def test_a_stopped_postgres_is_retried_and_loses_nothing_once_back(postgres, pg_url):
    store_url = pg_url
    w = writer_for(store_url, retry_s=60)
    try:
        w.submit(row())
        assert w.flush(30)
        postgres.stop()
        rows = [row() for _ in range(10)]
        for r in rows:
            w.submit(r)
        assert wait_until(lambda: w.health().get("reason") == "unavailable", 30)
        postgres.start()
        assert w.flush(60) and not w.dropped
        assert {r["id"] for r in rows} <= stored_ids(store_url)
    finally:
        postgres.start()  # whatever happened, the next test gets a running server
        w.close()


def test_retention_holds_under_load(store_url):
    w = writer_for(store_url, max_rows=50, cap=10_000)
    try:
        def load():
            for _ in range(150):
                w.submit(row())
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert w.flush(60) and not w.dropped and w.written == 600
        assert TraceStore(store_url).count() == 50
    finally:
        w.close()
