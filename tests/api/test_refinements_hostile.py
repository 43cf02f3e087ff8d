"""The stored-refinement routes and the playground attacked as a hostile client would, against real
servers: a DELETE leaves no copy of the trace in the SQLite file or its WAL; the store's folder
removed mid-run loses traces that are counted, never silently; trace reads stuck on a locked store
do not hold up other refinements' verifier checks; the playground page is framed and
script-protected under every URL that serves it.

    .venv/bin/python -m pytest -q tests/api/test_refinements_hostile.py
"""

import asyncio
import glob
import re
import shutil
import time

import httpx
import pytest

from app.traces.store import TraceStore
from tests.api.test_refinements import KEYS, A, B, db_row
from tests.servers import start_server, stop_server, wait_for
from tests.traces.faults import locked

pytestmark = pytest.mark.slow


def small(question: str, **extra) -> dict:
    return {"question": question, "max_turns": 1, "max_tokens": 16, **extra}


def store_bytes(db) -> bytes:
    """Every byte of the SQLite store: the file, its WAL and its shared-memory index."""
    return b"".join(open(f, "rb").read() for f in sorted(glob.glob(f"{db}*")))


def dropped(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics").text
    return {m[1]: float(m[2]) for m in re.finditer(r'^rise_traces_dropped_total\{reason="(\w+)"\} (\S+)', text, re.M)}


def test_delete_leaves_no_copy_in_the_file_or_its_wal(tmp_path):
    db = tmp_path / "traces.db"
    proc, url, _ = start_server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_TRACES_KEEP_REFERENCES": "true",
                                 "RISE_API_KEYS": ",".join(KEYS)})
    try:
        kept = httpx.post(f"{url}/v1/refine", json=small("What is 2+3?"), headers=A, timeout=60).json()["id"]
        marker = "Zebra-question-7f3a: what is 4+4?"
        rid = httpx.post(f"{url}/v1/refine", json=small(marker, reference="REF-5c1e"), headers=A, timeout=60).json()["id"]
        fb = httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"comment": "COMMENT-91ab", "reference": "FBREF-2d7c"},
                        headers=A)
        assert fb.status_code == 200, fb.text
        assert b"REF-5c1e" in store_bytes(db)  # stored, so the check below means something
        assert httpx.delete(f"{url}/v1/refinements/{rid}", headers=B).status_code == 404  # not theirs
        assert httpx.delete(f"{url}/v1/refinements/{rid}", headers=A).status_code == 200
        assert db_row(db, rid) is None and db_row(db, kept) is not None
        raw = store_bytes(db)
        for secret in (marker, "REF-5c1e", "COMMENT-91ab", "FBREF-2d7c", rid):
            assert secret.encode() not in raw, f"{secret!r} is still in the store's files after DELETE"
        assert httpx.get(f"{url}/v1/refinements/{kept}", headers=A).status_code == 200  # the rest is intact
        assert httpx.post(f"{url}/v1/refine", json=small("What is 1+1?"), headers=A, timeout=60).status_code == 200
    finally:
        stop_server(proc)


def test_the_store_folder_removed_mid_run_counts_the_lost_traces(tmp_path):
    folder = tmp_path / "store"
    folder.mkdir()
    proc, url, _ = start_server({"RISE_TRACES_URL": f"sqlite:///{folder / 'traces.db'}", "RISE_TRACES_RETRY_S": "0.5"})
    try:
        first = httpx.post(f"{url}/v1/refine", json=small("What is 2+3?"), timeout=60).json()["id"]
        assert httpx.get(f"{url}/v1/refinements/{first}").status_code == 200
        shutil.rmtree(folder)
        for _ in range(3):  # still answered
            assert httpx.post(f"{url}/v1/refine", json=small("What is 3+3?"), timeout=60).status_code == 200
        # never "written" into the unlinked file: each lost trace is counted, /ready says so and stays 200
        assert wait_for(lambda: sum(dropped(url).values()) >= 3, 30), dropped(url)
        ready = httpx.get(f"{url}/ready")
        assert ready.status_code == 200 and ready.json()["traces"]["status"] == "degraded", ready.text
        assert httpx.get(f"{url}/v1/refinements").status_code == 503  # no stale rows from the deleted file
    finally:
        stop_server(proc)


def test_trace_reads_on_a_locked_store_do_not_hold_up_verifier_checks(tmp_path):
    db = tmp_path / "traces.db"
    TraceStore(f"sqlite:///{db}").create()
    proc, url, _ = start_server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_TRACES_RETRY_S": "30"})
    checked = small("What is 2+3?", verifier={"name": "regex", "pattern": "5", "on": "text"})

    async def attack() -> float:
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            with locked(db):
                pending = (await c.post("/v1/refine", json=small("What is 1+1?"))).json()["id"]
                # each read waits for the pending write (5 s), then for the lock (the busy timeout)
                reads = [asyncio.create_task(c.get(f"/v1/refinements/{pending}")) for _ in range(8)]
                await asyncio.sleep(1.0)
                t = time.monotonic()
                r = await c.post("/v1/refine", json=checked)
                took = time.monotonic() - t
                assert r.status_code == 200 and all(turn["checked"] for turn in r.json()["turns"]), r.text
            await asyncio.gather(*reads)
            return took

    try:
        warm = httpx.post(f"{url}/v1/refine", json=checked, timeout=60)
        assert warm.status_code == 200
        # its trace is written before the test locks the file (a write still under way held the lock)
        assert httpx.get(f"{url}/v1/refinements/{warm.json()['id']}", timeout=60).status_code == 200
        took = asyncio.run(attack())
        assert took < 3.0, f"a refinement with a verifier took {took:.1f} s while trace reads waited on the store"
    finally:
        stop_server(proc)


def test_the_page_under_static_carries_the_csp_and_no_framing(server):
    url = server  # the session's server: default settings, only its static pages are read
    page = httpx.get(f"{url}/")
    assert page.headers["x-frame-options"] == "DENY"
    for path in ("/static/index.html", "/static/app.js", "/static/favicon.svg"):
        r = httpx.get(f"{url}{path}")
        assert r.status_code == 200, path
        assert r.headers.get("content-security-policy") == page.headers["content-security-policy"], path
        assert r.headers.get("x-frame-options") == "DENY" and r.headers.get("x-content-type-options") == "nosniff", path
