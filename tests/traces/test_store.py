"""The trace store on SQLite and on a real PostgreSQL: what a trace holds, key scoping, paging,
feedback (the last wins), DELETE removing the row, retention, references kept only when asked.

    .venv/bin/python -m pytest -q -rs tests/traces/test_store.py
"""

import json
import random
import time

import pytest
import sqlalchemy

from app.traces.record import exported, public
from app.traces.retention import fair_cut
from app.traces.schema import new_id, valid_id
from app.traces.store import TraceStore, check_url
from tests.traces.rows import QUESTION, row


@pytest.fixture
def store(store_url):
    s = TraceStore(store_url)
    yield s
    s.close()


def raw_count(url: str, trace_id: str) -> int:
    """Rows with this id, read past the store's code."""
    e = sqlalchemy.create_engine(url)
    with e.connect() as c:
        n = c.execute(sqlalchemy.text("SELECT count(*) FROM rise_traces WHERE id = :i"), {"i": trace_id}).scalar_one()
    e.dispose()
    return n


def test_a_trace_holds_every_turn_and_reads_back_without_reference(store):
    r = row(key_id="abc", reference="5", keep=True)
    store.insert([r])
    got = store.get(r["id"], "abc")
    assert got["reference"] == "5"  # stored (KEEP_REFERENCES on) ...
    shown = public(got)
    assert "reference" not in json.dumps(shown)  # ... never shown
    assert shown["question"] == QUESTION and shown["final_answer"] == "5" and shown["stop_reason"] == "max_turns"
    assert [t["turn"] for t in shown["turns"]] == [1, 2]
    t = shown["turns"][0]
    assert t["answer"] == "5" and t["completion_tokens"] == 12 and t["latency_s"] == 0.01
    assert t["samples"][0]["confidence"] == 0.9 and shown["config"]["max_turns"] == 2


def test_reference_is_not_stored_without_keep_references(store, store_url):
    r = row(reference="5", keep=False)
    store.insert([r])
    e = sqlalchemy.create_engine(store_url)
    with e.connect() as c:
        stored = c.execute(sqlalchemy.text("SELECT * FROM rise_traces WHERE id = :i"), {"i": r["id"]}).mappings().one()
    e.dispose()
    assert stored["reference"] is None and '"5"' not in stored["body"].replace('"answer":"5"', "").replace(
        '"final_answer":"5"', "").replace('{"5":2}', "")


def test_a_key_sees_only_its_own_traces(store):
    mine, theirs = row(key_id="key-a"), row(key_id="key-b")
    store.insert([mine, theirs])
    assert store.get(mine["id"], "key-a") and store.get(theirs["id"], "key-a") is None
    rows, _ = store.page("key-a", 10)
    assert [r["id"] for r in rows] == [mine["id"]]
    assert store.set_feedback(theirs["id"], "key-a", rating=1, comment=None, reference=None) is None
    assert store.delete(theirs["id"], "key-a") is False and store.get(theirs["id"], "key-b")


def test_pages_go_newest_first_with_a_before_cursor(store):
    now = time.time()
    rows = [row(created=now - i) for i in range(5)]  # rows[0] newest
    store.insert(rows)
    first, more = store.page(None, 2)
    assert [r["id"] for r in first] == [rows[0]["id"], rows[1]["id"]] and more
    second, more = store.page(None, 2, before=first[-1]["id"])
    assert [r["id"] for r in second] == [rows[2]["id"], rows[3]["id"]] and more
    last, more = store.page(None, 2, before=second[-1]["id"])
    assert [r["id"] for r in last] == [rows[4]["id"]] and not more
    assert store.page(None, 2, before=new_id("rr")) is None


def test_the_last_feedback_wins(store):
    r = row()
    store.insert([r])
    store.set_feedback(r["id"], None, rating=-1, comment="wrong", reference="6")
    got = store.set_feedback(r["id"], None, rating=1, comment=None, reference=None)
    assert got["fb_rating"] == 1 and got["fb_comment"] is None and got["fb_reference"] is None
    assert public(got)["feedback"]["rating"] == 1


def test_delete_removes_the_row_from_the_database(store, store_url):
    r = row()
    store.insert([r])
    assert raw_count(store_url, r["id"]) == 1
    assert store.delete(r["id"], None) is True
    assert raw_count(store_url, r["id"]) == 0 and store.delete(r["id"], None) is False


def test_retention_drops_the_oldest_rows_and_the_too_old(store):
    now = time.time()
    rows = [row(created=now - 100 + i) for i in range(10)]
    store.insert(rows)
    assert store.prune(max_rows=6, max_age_s=1000) == 4
    kept = {r["id"] for r in store.rows()}
    assert kept == {r["id"] for r in rows[4:]}
    assert store.prune(max_rows=100, max_age_s=94.5, now=now) == 2  # created now-96 and now-95: older than 94.5 s
    assert store.count() == 4


def test_retention_on_a_fresh_store_finds_nothing_to_do(store):
    """Hostile review: a fresh server's idle retention (a minute after start, before any write)
    failed on the missing table and logged "trace retention failed: no such table"."""
    assert store.prune(max_rows=5, max_age_s=1000) == 0


def test_retention_takes_from_the_heaviest_key_and_spares_labelled_rows(store):
    now = time.time()
    a = [row(key_id="key-a", created=now - 100 + i) for i in range(3)]  # key a's rows are the oldest
    b = [row(key_id="key-b", created=now - 50 + i) for i in range(10)]
    store.insert(a + b)
    store.set_feedback(a[0]["id"], "key-a", rating=1, comment=None, reference=None)
    store.set_feedback(b[0]["id"], "key-b", rating=-1, comment=None, reference=None)
    assert store.prune(max_rows=6, max_age_s=1000) == 7
    # key b's traffic cost key b its own oldest unlabelled rows; every labelled row stayed
    assert {r["id"] for r in store.rows()} == {a[0]["id"], a[1]["id"], a[2]["id"], b[0]["id"], b[8]["id"], b[9]["id"]}
    assert store.prune(max_rows=1, max_age_s=1000) == 5  # labelled rows go only once no other row is left
    assert [r["id"] for r in store.rows()] == [b[0]["id"]]  # the older labelled row went first
    assert store.prune(max_rows=1, max_age_s=10, now=now) == 1  # and the age limit binds every row


def test_fair_cut_takes_one_row_at_a_time_from_the_heaviest_key():
    rng = random.Random(7)
    for _ in range(500):
        counts = {f"k{i}": rng.randint(0, 30) for i in range(rng.randint(1, 6))}
        excess = rng.randint(0, sum(counts.values()) + 3)
        greedy = dict(counts)
        for _ in range(min(excess, sum(counts.values()))):  # the rule, a row at a time
            greedy[max(greedy, key=greedy.get)] -= 1
        cut, at_level, left = fair_cut(counts, excess)
        assert left < max(len(at_level), 1)
        after = {k: n - cut.get(k, 0) - (k in at_level[:left]) for k, n in counts.items()}
        assert sorted(after.values()) == sorted(greedy.values()), (counts, excess)


def test_a_table_made_before_the_retention_index_gets_it(store, store_url):
    store.insert([row()])
    e = sqlalchemy.create_engine(store_url)
    with e.begin() as c:
        c.execute(sqlalchemy.text("DROP INDEX ix_rise_traces_key_labelled"))
    later = TraceStore(store_url)
    later.create()
    assert "ix_rise_traces_key_labelled" in {i["name"] for i in sqlalchemy.inspect(e).get_indexes("rise_traces")}
    later.close()
    e.dispose()


def test_export_rows_carry_the_reference_only_when_labelled(store):
    r = row(reference="5", keep=True)
    store.insert([r])
    got = store.get(r["id"], None)
    assert "reference" not in exported(got, with_reference=False)
    assert exported(got, with_reference=True)["reference"] == "5"
    store.set_feedback(r["id"], None, rating=-1, comment=None, reference="6")
    assert exported(store.get(r["id"], None), with_reference=True)["reference"] == "6"  # feedback's wins


def test_ids_are_random_and_checked():
    ids = {new_id("rr") for _ in range(1000)}
    assert len(ids) == 1000 and all(valid_id(i) and len(i) == 3 + 32 for i in ids)
    for bad in ("rr-1", "rr-" + "g" * 32, "xx-" + "0" * 32, "rr-" + "0" * 32 + "\n", "../rr", ""):
        assert not valid_id(bad)


@pytest.mark.parametrize("url", ["nope", "mysql://u@h/db", "sqlite://", "sqlite:///:memory:"])
def test_bad_urls_are_refused_with_a_reason(url):
    with pytest.raises(ValueError, match="RISE_TRACES_URL"):
        check_url(url)
