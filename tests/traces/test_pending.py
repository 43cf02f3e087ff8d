"""A trace whose write is still pending (issue 26, item 2): DELETE wins over the write (the row is
never stored, or deleted right after it), feedback attaches once the row exists, and a call that
cannot wait long enough gets a retryable 503 with Retry-After, never a definitive 404.

The writer against a store whose inserts wait on a gate (in-process), then real servers on a real
PostgreSQL whose inserts take 12 s (a row trigger running `pg_sleep`, standing in for a slow disk
or a lagging standby), longer than the 5 s a route waits for the write.

    .venv/bin/python -m pytest -q -rs tests/traces/test_pending.py
"""

import threading
import time

import httpx
import pytest
import sqlalchemy

from app.traces.store import TraceStore
from app.traces.writer import TraceWriter
from tests.pg import wait_until
from tests.servers import start_server, stop_server
from tests.traces.rows import row, stored_ids

SLOW_S = 12  # each insert on the slow PostgreSQL; the routes wait 5 s (SETTLE_S)
Q = "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?"


class GatedStore(TraceStore):
    """A real SQLite store whose inserts wait until `gate` is set: a write stays pending."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.gate, self.inserting = threading.Event(), threading.Event()

    def insert(self, rows):
        self.inserting.set()
        assert self.gate.wait(30)
        super().insert(rows)


@pytest.fixture
def gated(tmp_path):
    store = GatedStore(f"sqlite:///{tmp_path / 't.db'}")
    w = TraceWriter(store, retry_s=5)
    w.start()
    yield w, store
    store.gate.set()
    w.close()


def test_delete_wins_over_a_write_in_flight_and_one_still_queued(gated):
    w, store = gated
    in_flight, queued, kept = row(key_id="a"), row(key_id="a"), row(key_id="a")
    for r in (in_flight, queued, kept):
        w.submit(r)
    assert store.inserting.wait(10)  # the first batch is inside the (slow) insert
    assert w.forget(in_flight["id"], "a") and w.forget(queued["id"], "a")
    assert not w.forget(kept["id"], "b")  # another key's pending trace is not touched
    store.gate.set()
    assert w.flush(30)
    assert stored_ids(store.url) == {kept["id"]}  # written and deleted at once, or never written
    assert w.gone(in_flight["id"], "a") and w.gone(queued["id"], "a") and not w.gone(in_flight["id"], "b")


def test_feedback_on_a_pending_trace_attaches_once_it_is_written(gated):
    w, store = gated
    in_flight, queued = row(key_id="a"), row(key_id="a")
    w.submit(in_flight)
    assert store.inserting.wait(10)
    w.submit(queued)
    fb = {"rating": -1, "comment": "off by one", "reference": None}
    assert w.hold_feedback(in_flight["id"], "a", fb) and w.hold_feedback(queued["id"], "a", {**fb, "rating": 1})
    assert not w.hold_feedback(queued["id"], "b", fb)
    store.gate.set()
    assert w.flush(30)
    assert store.get(in_flight["id"], "a")["fb_rating"] == -1 and store.get(in_flight["id"], "a")["fb_comment"] == "off by one"
    assert store.get(queued["id"], "a")["fb_rating"] == 1 and store.get(queued["id"], "a")["fb_at"] is not None


# real servers on a slow PostgreSQL -------------------------------------------------------------

@pytest.fixture
def slow_pg(pg_url):
    """A store whose every insert takes SLOW_S seconds (created here, so the server finds it)."""
    TraceStore(pg_url).create()
    e = sqlalchemy.create_engine(pg_url)
    with e.begin() as c:
        c.exec_driver_sql(f"CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep({SLOW_S}); "
                          "RETURN NEW; END $$ LANGUAGE plpgsql")
        c.exec_driver_sql("CREATE TRIGGER slow BEFORE INSERT ON rise_traces FOR EACH ROW EXECUTE FUNCTION slow()")
    e.dispose()
    proc, base, _ = start_server({"RISE_TRACES_URL": pg_url, "RISE_LOG_LEVEL": "warning"})
    yield pg_url, base
    stop_server(proc)


def refine(base: str) -> str:
    r = httpx.post(f"{base}/v1/refine", json={"question": Q, "max_turns": 1, "max_tokens": 16}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def retried(method: str, url: str, **kw) -> tuple[list[int], httpx.Response]:
    """The call, repeated after each 503's Retry-After (at most 60 s): the statuses seen and the last answer."""
    seen, until = [], time.monotonic() + 60
    while True:
        r = httpx.request(method, url, timeout=30, **kw)
        seen.append(r.status_code)
        if r.status_code != 503 or time.monotonic() > until:
            return seen, r
        assert r.headers.get("retry-after", "").isdigit() and r.json()["error"]["code"] == "trace_pending", r.text
        time.sleep(int(r.headers["retry-after"]))


def test_delete_right_after_the_response_removes_a_slowly_written_trace_for_good(slow_pg):
    url, base = slow_pg
    rid = refine(base)
    seen, r = retried("DELETE", f"{base}/v1/refinements/{rid}")
    assert r.status_code == 200 and r.json()["deleted"] is True, (seen, r.text)  # never a 404 on the way
    assert seen[0] == 503 and set(seen) == {200, 503}  # the first call outlasted the 5-s wait: marked, retryable
    later = refine(base)  # the writer is first in, first out: once this one is stored, rid was settled
    assert wait_until(lambda: later in stored_ids(url), 60)
    assert rid not in stored_ids(url)
    assert httpx.get(f"{base}/v1/refinements/{rid}", timeout=30).status_code == 404


def test_get_and_feedback_while_the_write_is_pending_are_retryable_and_the_label_is_kept(slow_pg):
    url, base = slow_pg
    rid = refine(base)
    got = httpx.get(f"{base}/v1/refinements/{rid}", timeout=30)
    assert got.status_code == 503 and got.headers["retry-after"].isdigit(), got.text  # not a 404: it is coming
    fb = httpx.post(f"{base}/v1/refinements/{rid}/feedback", json={"rating": -1, "comment": "late label"}, timeout=30)
    assert fb.status_code in (200, 503), fb.text
    if fb.status_code == 503:
        assert fb.headers["retry-after"].isdigit() and "feedback" in fb.json()["error"]["message"]

    def label():
        s = TraceStore(url)
        try:
            r = s.get(rid, None)
            return r and r["fb_rating"]
        finally:
            s.close()
    assert wait_until(lambda: label() == -1, 60)  # held and applied once the row existed: never sent again
    seen, r = retried("GET", f"{base}/v1/refinements/{rid}")
    assert r.status_code == 200 and r.json()["feedback"]["comment"] == "late label", (seen, r.text)


def test_a_reserved_id_is_pending_until_its_trace_comes_or_it_is_released(gated):
    """A stream tells its id before its trace exists (hostile review: a DELETE then was a 404 and
    the trace was stored after it): `reserve` makes it pending; `release` ends that, a DELETE
    meanwhile leaving it `gone`."""
    w, store = gated
    store.gate.set()
    failed, deleted, kept = row(key_id="a"), row(key_id="a"), row(key_id="a")
    for r in (failed, deleted, kept):
        w.reserve(r["id"], "a")
    assert w.pending(failed["id"], "a") and not w.pending(failed["id"], "b")
    w.release(failed["id"])  # its refinement failed: no trace comes
    assert not w.pending(failed["id"], "a") and not w.gone(failed["id"], "a")
    assert w.forget(deleted["id"], "a")  # a DELETE while it streams
    w.submit(deleted)
    w.submit(kept)
    for r in (deleted, kept):
        w.release(r["id"])  # the stream ends after its trace was handed over: nothing changes
    assert w.wait_written(deleted["id"], 10) and w.wait_written(kept["id"], 10)
    assert stored_ids(store.url) == {kept["id"]} and w.gone(deleted["id"], "a")
    late = row(key_id="a")
    w.reserve(late["id"], "a")
    assert w.forget(late["id"], "a")
    w.release(late["id"])  # deleted, then its client left: never stored, and DELETE says so
    assert w.gone(late["id"], "a") and not w.pending(late["id"])
