"""`store`, on both APIs, against real servers: with traces on (SQLite) `store: false` keeps nothing
(no row in the database, nothing to read, label or export) and `store: true` keeps the refinement;
left out, the chat API keeps nothing (OpenAI's default for chat completions) and the native API
keeps it. With traces off `store: true` is a 400 naming the field, `store: false` is served.
The chat calls go through the official `openai` client.

    .venv/bin/python -m pytest -q tests/api/test_store_switch.py
"""

import sqlite3

import httpx
import openai
import pytest

from tests.servers import start_server, stop_server

Q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"
RISE = {"rise": {"max_turns": 1}}


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    db = tmp_path_factory.mktemp("store") / "traces.db"
    proc, url, _ = start_server({"RISE_TRACES_URL": f"sqlite:///{db}"})
    yield url, db
    stop_server(proc)


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def chat(url: str, stream: bool = False, **store) -> str:
    """A chat completion's id (`store` passed only when given)."""
    made = client(url).chat.completions.create(model="rise-synth", messages=[{"role": "user", "content": Q}],
                                               max_tokens=48, stream=stream, extra_body=RISE, **store)
    return [c.id for c in made][-1] if stream else made.id


def refine(url: str, **extra) -> httpx.Response:
    return httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 1, "max_tokens": 48, **extra}, timeout=60)


def stored_ids(url: str, db) -> set[str]:
    """The ids in the database once every earlier write is done: a stored refinement made now is
    readable, and the writer keeps its order, so nothing submitted before it is still pending."""
    marker = refine(url).json()["id"]
    assert httpx.get(f"{url}/v1/refinements/{marker}", timeout=30).status_code == 200
    with sqlite3.connect(db) as c:
        return {row[0] for row in c.execute("SELECT id FROM rise_traces")}


def test_store_false_keeps_nothing_and_true_keeps_it(traced):
    url, db = traced
    not_kept = {"chat store=false": chat(url, store=False), "streamed chat store=false": chat(url, True, store=False),
                "chat without store": chat(url), "native store=false": refine(url, store=False).json()["id"]}
    native_stream = httpx.post(f"{url}/v1/refine", timeout=60, json={"question": Q, "max_turns": 1, "max_tokens": 48,
                                                                     "stream": True, "store": False})
    assert native_stream.status_code == 200 and "event: result" in native_stream.text
    kept = {"chat store=true": chat(url, store=True), "streamed chat store=true": chat(url, True, store=True),
            "native store=true": refine(url, store=True).json()["id"], "native without store": refine(url).json()["id"]}
    in_db = stored_ids(url, db)
    assert not in_db & set(not_kept.values()), {k: v for k, v in not_kept.items() if v in in_db}
    assert set(kept.values()) <= in_db, {k: v for k, v in kept.items() if v not in in_db}
    assert len(in_db) == len(kept) + 1  # and stored_ids' marker: the streamed native store=false left nothing
    for what, trace_id in not_kept.items():
        r = httpx.get(f"{url}/v1/refinements/{trace_id}", timeout=30)
        assert r.status_code == 404, (what, r.status_code)
        labelled = httpx.post(f"{url}/v1/refinements/{trace_id}/feedback", json={"rating": 1}, timeout=30)
        assert labelled.status_code == 404, (what, labelled.status_code)
    listed = {t["id"] for t in httpx.get(f"{url}/v1/refinements?limit=100", timeout=30).json()["data"]}
    assert not listed & set(not_kept.values())
    for what, trace_id in kept.items():
        t = httpx.get(f"{url}/v1/refinements/{trace_id}", timeout=30).json()
        assert t["id"] == trace_id and t["question"] == Q, what


def test_store_true_without_traces_is_a_400_naming_the_field(server):
    with pytest.raises(openai.BadRequestError) as refused:
        chat(server, store=True)
    err = refused.value.body
    assert err["param"] == "store" and "RISE_TRACES_URL" in err["message"], err
    with pytest.raises(openai.BadRequestError):
        chat(server, True, store=True)  # refused before the stream starts
    r = refine(server, store=True)
    assert r.status_code == 400 and r.json()["error"]["param"] == "store", r.text
    assert chat(server, store=False).startswith("chatcmpl-") and chat(server).startswith("chatcmpl-")
    assert refine(server, store=False).status_code == 200


@pytest.mark.parametrize("bad", ["yes", 1, 0, "true", [True], {}])
def test_store_is_a_strict_boolean_on_both_apis(server, bad):
    r = refine(server, store=bad)
    assert r.status_code == 400 and r.json()["error"]["param"] == "store", r.text
    r = httpx.post(f"{server}/v1/chat/completions", timeout=60, json={
        "model": "rise-synth", "messages": [{"role": "user", "content": Q}], "store": bad})
    assert r.status_code == 400 and r.json()["error"]["param"] == "store", r.text
