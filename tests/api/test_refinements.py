"""The stored-refinement routes against a real server with traces on (SQLite) and API keys:
every refinement (native and chat, streamed or not) is readable right after its response; a key
sees only its own traces (another key gets 404); feedback labels a trace (the last wins) and bad
feedback is a 400 naming the problem; DELETE removes the row from the database; the reference
appears in no response, log line or metric; traces off is a 409.

    .venv/bin/python -m pytest -q tests/api/test_refinements.py
"""

import json
import sqlite3

import httpx
import openai
import pytest

from tests.servers import start_server, stop_server

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
SECRET = "987654"  # a (wrong) reference no model output contains: it must never come back
KEYS = ("k-trace-alpha-012345", "k-trace-beta-987650")
A, B = ({"Authorization": f"Bearer {k}"} for k in KEYS)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    db = tmp_path_factory.mktemp("traces") / "traces.db"
    proc, url, log = start_server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_TRACES_KEEP_REFERENCES": "true",
                                   "RISE_API_KEYS": ",".join(KEYS), "RISE_LOG_JSON": "true"})
    yield url, db, log
    stop_server(proc)


def refine(url, headers=A, **extra) -> dict:
    r = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 2, "max_tokens": 48, **extra}, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def db_row(db, trace_id):
    with sqlite3.connect(db) as c:
        c.row_factory = sqlite3.Row
        return c.execute("SELECT * FROM rise_traces WHERE id = ?", (trace_id,)).fetchone()


def test_a_refinement_is_readable_as_soon_as_it_was_answered(traced):
    url, db, _ = traced
    served = refine(url, reference=SECRET)
    r = httpx.get(f"{url}/v1/refinements/{served['id']}", headers=A)
    assert r.status_code == 200 and SECRET not in r.text
    trace = r.json()
    assert trace["id"] == served["id"] and trace["object"] == "refinement.trace" and trace["route"] == "/v1/refine"
    assert trace["question"] == Q and trace["final_answer"] == served["final_answer"]
    assert trace["stop_reason"] == served["stop_reason"] and trace["engine"] == "hf"
    assert [t["text"] for t in trace["turns"]] == [t["text"] for t in served["turns"]]
    assert all(t["latency_s"] >= 0 and t["completion_tokens"] > 0 for t in trace["turns"])
    assert trace["config"]["max_turns"] == 2 and trace["feedback"] is None
    stored = db_row(db, served["id"])
    assert stored["reference"] == SECRET and stored["key_id"] == __import__("hashlib").sha256(KEYS[0].encode()).hexdigest()[:12]
    assert KEYS[0] not in json.dumps(dict(stored))  # the key id, never the key


def test_streamed_and_chat_refinements_are_stored(traced):
    url, _, _ = traced
    with httpx.stream("POST", f"{url}/v1/refine", json={"question": Q, "max_turns": 2, "stream": True},
                      headers=A, timeout=60) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: {")]
    rid = json.loads(events[-1][6:])["id"]
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[0], max_retries=0)
    chat = client.chat.completions.create(model="rise-synth", messages=[{"role": "user", "content": Q}], n=2,
                                          store=True, extra_body={"rise": {"max_turns": 2}})
    stream = client.chat.completions.create(model="rise-synth", messages=[{"role": "user", "content": Q}],
                                            stream=True, store=True, extra_body={"rise": {"max_turns": 1}})
    sid = [c.id for c in stream][-1]
    for trace_id, route in ((rid, "/v1/refine"), (chat.id, "/v1/chat/completions"), (sid, "/v1/chat/completions")):
        t = httpx.get(f"{url}/v1/refinements/{trace_id}", headers=A).json()
        assert t["route"] == route and t["turns"], t
    both = httpx.get(f"{url}/v1/refinements/{chat.id}", headers=A).json()
    assert len(both["choices"]) == 2 and both["final_text"] == chat.choices[0].message.content


def test_another_key_gets_404_never_403(traced):
    url, db, _ = traced
    mine = refine(url)["id"]
    # the row is in the database first (the owner's read waits for its pending write), so that the
    # other key's 404s are for a trace that exists, and "untouched" below reads the stored row
    assert httpx.get(f"{url}/v1/refinements/{mine}", headers=A).status_code == 200
    for method, path, body in (("GET", f"/v1/refinements/{mine}", None), ("DELETE", f"/v1/refinements/{mine}", None),
                               ("POST", f"/v1/refinements/{mine}/feedback", {"rating": 1})):
        r = httpx.request(method, f"{url}{path}", json=body, headers=B)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (method, r.text)
    listed = httpx.get(f"{url}/v1/refinements", params={"limit": 100}, headers=B).json()["data"]
    assert mine not in {t["id"] for t in listed}
    assert db_row(db, mine) is not None and db_row(db, mine)["fb_at"] is None  # untouched
    assert httpx.get(f"{url}/v1/refinements/{mine}").status_code == 401  # and no key at all is a 401


def test_list_pages_newest_first_with_before(traced):
    url, _, _ = traced
    ids = [refine(url, headers=B, max_turns=1)["id"] for _ in range(3)]
    page = httpx.get(f"{url}/v1/refinements", params={"limit": 2}, headers=B).json()
    assert [t["id"] for t in page["data"]] == ids[::-1][:2] and page["has_more"]
    rest = httpx.get(f"{url}/v1/refinements", params={"limit": 2, "before": page["data"][-1]["id"]}, headers=B).json()
    assert rest["data"][0]["id"] == ids[0]
    for params in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"before": "nope"}, {"before": "rr-" + "0" * 32}):
        r = httpx.get(f"{url}/v1/refinements", params=params, headers=B)
        assert r.status_code == 400 and r.json()["error"]["param"] in ("query.limit", "before"), (params, r.text)


def test_feedback_labels_the_trace_and_the_last_wins(traced):
    url, db, _ = traced
    rid = refine(url)["id"]
    first = httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"rating": -1, "reference": "31",
                                                                     "comment": "forgot the 9"}, headers=A)
    assert first.status_code == 200 and first.json()["feedback"]["reference_given"] is True
    assert '"31"' not in json.dumps(first.json()["feedback"])
    assert db_row(db, rid)["fb_reference"] == "31"
    second = httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"rating": 1}, headers=A).json()
    assert second["feedback"] == {"rating": 1, "comment": None, "reference_given": False, "at": second["feedback"]["at"]}
    assert db_row(db, rid)["fb_reference"] is None and db_row(db, rid)["fb_rating"] == 1


BAD_FEEDBACK = [
    ({}, None), ({"rating": 0}, "rating"), ({"rating": 2}, "rating"), ({"rating": "1"}, "rating"),
    ({"rating": True}, "rating"), ({"rating": 1.0}, "rating"), ({"comment": 5}, "comment"),
    ({"comment": "x" * 2001}, "comment"), ({"comment": "a\x00b"}, "comment"), ({"reference": ""}, "reference"),
    ({"reference": 31}, "reference"), ({"reference": "(" * 20 + ")" * 20}, "reference"), ({"stars": 5}, "stars"),
    ({"rating": None, "comment": None}, None), ({"reference": "x" * 1001}, "reference"),
]
RAW_FEEDBACK = [b"not json", b"{", b"[]", b'"good"', b"1", b"null", b'{"rating": 1} trailing', b"\xff\xfe"]


@pytest.fixture(scope="module")
def one_trace(traced):
    return refine(traced[0], max_turns=1)["id"]


@pytest.mark.parametrize("body,param", BAD_FEEDBACK, ids=[str(b)[:30] for b, _ in BAD_FEEDBACK])
def test_bad_feedback_is_a_400_naming_the_problem(traced, one_trace, body, param):
    url, _, _ = traced
    rid = one_trace
    r = httpx.post(f"{url}/v1/refinements/{rid}/feedback", json=body, headers=A)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param or (param is None and "at least one" in err["message"]), err
    assert httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"rating": 1}, headers=A).status_code == 200


@pytest.mark.parametrize("raw", RAW_FEEDBACK)
def test_feedback_that_is_not_a_json_object_is_a_400(traced, one_trace, raw):
    url, _, _ = traced
    r = httpx.post(f"{url}/v1/refinements/{one_trace}/feedback", content=raw,
                   headers={**A, "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"], r.text
    assert httpx.post(f"{url}/v1/refinements/{one_trace}/feedback", json={"rating": 1}, headers=A).status_code == 200


@pytest.mark.parametrize("bad", ["nope", "rr-123", "rr-" + "0" * 32, "chatcmpl-" + "f" * 32, "rr-" + "G" * 32,
                                 "rr-" + "0" * 31 + "%0A", "..%2F..%2Fetc", "rr-" + "a" * 5000])
def test_unknown_and_malformed_ids_are_404(traced, bad):
    url, _, _ = traced
    for method, path, body in (("GET", f"/v1/refinements/{bad}", None), ("DELETE", f"/v1/refinements/{bad}", None),
                               ("POST", f"/v1/refinements/{bad}/feedback", {"rating": 1})):
        r = httpx.request(method, f"{url}{path}", json=body, headers=A)
        assert r.status_code == 404, (method, bad, r.status_code, r.text[:200])
        assert len(r.text) < 500


def test_delete_removes_the_row_from_the_database(traced):
    url, db, _ = traced
    rid = refine(url, reference=SECRET)["id"]
    assert httpx.get(f"{url}/v1/refinements/{rid}", headers=A).status_code == 200  # waits for its pending write
    assert db_row(db, rid) is not None
    r = httpx.delete(f"{url}/v1/refinements/{rid}", headers=A)
    assert r.status_code == 200 and r.json() == {"id": rid, "object": "refinement.deleted", "deleted": True}
    assert db_row(db, rid) is None
    assert httpx.get(f"{url}/v1/refinements/{rid}", headers=A).status_code == 404
    assert httpx.delete(f"{url}/v1/refinements/{rid}", headers=A).status_code == 404


def test_the_reference_is_in_no_response_log_or_metric(traced):
    url, _, log = traced
    rid = refine(url, reference=SECRET)["id"]
    httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"reference": SECRET, "rating": -1}, headers=A)
    texts = [httpx.get(f"{url}/v1/refinements/{rid}", headers=A).text,
             httpx.get(f"{url}/v1/refinements", params={"limit": 100}, headers=A).text,
             httpx.post(f"{url}/v1/refinements/{rid}/feedback", json={"rating": -1}, headers=A).text,
             httpx.get(f"{url}/metrics").text, httpx.get(f"{url}/ready").text]
    assert all(SECRET not in t for t in texts)
    assert log.read_text() and SECRET not in log.read_text()


def test_ready_reports_the_store(traced):
    url, _, _ = traced
    body = httpx.get(f"{url}/ready").json()
    assert body["status"] == "ready" and body["traces"]["status"] == "ok"


@pytest.mark.parametrize("method,path", [("GET", "/v1/refinements/rr-" + "0" * 32), ("GET", "/v1/refinements"),
                                         ("DELETE", "/v1/refinements/rr-" + "0" * 32),
                                         ("POST", "/v1/refinements/rr-" + "0" * 32 + "/feedback")])
def test_traces_off_is_a_409(server, method, path):
    r = httpx.request(method, f"{server}{path}", json={"rating": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "traces_off"
    assert "traces" not in httpx.get(f"{server}/ready").json()
