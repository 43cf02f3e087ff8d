"""With RISE_TRACES_KEEP_REFERENCES off (the default) a reference is not stored at all: not in any
byte of the SQLite file or its WAL, for the native API nor the chat API; feedback carrying one is a
409 that changes nothing, while a rating alone is stored. Keys off: every caller sees every trace.

    .venv/bin/python -m pytest -q tests/api/test_refinements_private.py
"""

import httpx
import pytest

from tests.pg import wait_until
from tests.servers import start_server, stop_server

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
SECRET = "918273"


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    db = tmp_path_factory.mktemp("private") / "traces.db"
    proc, url, log = start_server({"RISE_TRACES_URL": f"sqlite:///{db}"})
    yield url, db, log
    stop_server(proc)


def file_bytes(db) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_the_reference_is_not_stored_at_all(plain):
    url, db, log = plain
    native = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 2, "max_tokens": 48,
                                                  "reference": SECRET}, timeout=60).json()["id"]
    chat = httpx.post(f"{url}/v1/chat/completions", json={"model": "rise-synth", "max_tokens": 48, "store": True,
                                                          "messages": [{"role": "user", "content": Q}],
                                                          "rise": {"max_turns": 1, "reference": SECRET}}, timeout=60)
    for trace_id in (native, chat.json()["id"]):
        assert httpx.get(f"{url}/v1/refinements/{trace_id}").status_code == 200  # stored, and readable
    assert wait_until(lambda: Q.encode() in file_bytes(db))
    assert SECRET.encode() not in file_bytes(db) and SECRET not in log.read_text()


def test_feedback_with_a_reference_is_refused_and_changes_nothing(plain):
    url, db, _ = plain
    rid = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 1, "max_tokens": 48}, timeout=60).json()["id"]
    r = httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"reference": SECRET, "rating": -1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "references_not_kept"
    assert httpx.get(f"{url}/v1/refinements/{rid}").json()["feedback"] is None
    ok = httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"rating": -1, "comment": "off by one"})
    assert ok.status_code == 200 and ok.json()["feedback"]["rating"] == -1
    assert SECRET.encode() not in file_bytes(db)
