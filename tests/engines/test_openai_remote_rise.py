"""rise-serve in front of another rise-serve (`--engine openai`): the upstream does one plain turn
per downstream turn, so two hops cost exactly what one does, tokens still stream, and the upstream's
errors (a context that overflows) reach the client as they would from the front's own engine."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.servers import start_server, stop_server

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
TOO_LONG = "Sam has 3 apples. " * 400  # about 2400 tokens; the shipped models hold 1024
TURN_TWO_TOO_LONG = "Sam has 3 apples. " * 166 + "How many apples does Sam have?"  # about 1000 tokens
MARKER = re.compile(r"\[turn \d+\]\n|\n\[answer: [^\n]*\]\n")


@pytest.fixture(scope="module")
def front(server):
    """A rise-serve whose engine is the session's rise-serve (default 5 turns), over HTTP."""
    proc, url, _log = start_server({"RISE_ENGINE": "openai", "RISE_BASE_URL": f"{server}/v1"})
    yield url
    stop_server(proc)


def _refine(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/refine", json={"question": Q, "max_tokens": 80, **body}, timeout=120)


@pytest.mark.parametrize("window", ["last", "full"])
def test_two_hops_cost_what_one_does(server, front, window):
    direct, hops = _refine(server, max_turns=2, window=window).json(), _refine(front, max_turns=2, window=window).json()
    assert [t["text"] for t in hops["turns"]] == [t["text"] for t in direct["turns"]]
    assert [(t["prompt_tokens"], t["completion_tokens"]) for t in hops["turns"]] == \
           [(t["prompt_tokens"], t["completion_tokens"]) for t in direct["turns"]]
    assert hops["usage"] == direct["usage"] and hops["final_answer"] == direct["final_answer"]


def test_tokens_stream_through_two_hops_once(front, model_name):
    r = httpx.post(f"{front}/v1/chat/completions", timeout=120, json={
        "model": model_name, "messages": [{"role": "user", "content": Q}], "temperature": 0, "max_tokens": 80,
        "stream": True, "rise": {"max_turns": 2}})
    assert r.status_code == 200
    events = [json.loads(line[6:]) for line in r.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    reasoning = [c["choices"][0]["delta"].get("reasoning_content") for c in events if c.get("choices")]
    reasoning = [p for p in reasoning if p]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c.get("choices"))
    trace = next(c["rise"] for c in events if "rise" in c)
    texts = [t["text"] for t in trace["turns"]]
    assert MARKER.sub("", "".join(reasoning)) == "".join(texts)  # each turn's text streamed once
    assert len(reasoning) > 4 * len(texts)  # token by token, not one piece per turn
    assert content == texts[-1]


def test_over_long_questions_are_400_and_leave_the_front_ready(front):
    for _ in range(6):
        r = _refine(front, question=TOO_LONG, max_turns=2)
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
    assert httpx.get(f"{front}/ready").status_code == 200


def test_a_turn_that_outgrows_the_context_upstream_keeps_the_turns_before(server, front):
    direct = _refine(server, question=TURN_TWO_TOO_LONG, max_turns=3, window="full")
    assert direct.status_code == 200 and direct.json()["stop_reason"] == "context_length"  # the premise
    hops = _refine(front, question=TURN_TWO_TOO_LONG, max_turns=3, window="full")
    assert hops.status_code == 200, hops.text
    assert hops.json()["stop_reason"] == "context_length"
    assert [t["text"] for t in hops.json()["turns"]] == [t["text"] for t in direct.json()["turns"]]


# the same, against a scripted upstream --------------------------------------------------------

RISE_MODELS = {"object": "list", "data": [{"id": "rise-synth", "object": "model", "owned_by": "rise-serve",
                                           "max_model_len": 1024}]}


async def test_a_rise_serve_upstream_found_after_start_up_is_asked_for_one_turn():
    from app.engines.base import SamplingParams
    from app.engines.openai_remote import OpenAIEngine
    from tests.engines.fake_upstream import FakeUpstream, answer

    with FakeUpstream(lambda body, n: answer("The answer is 4.", stream=body.get("stream", False)),
                      models=RISE_MODELS) as up:
        engine = OpenAIEngine(up.url)  # never started: the upstream was down when the server started
        try:
            assert await engine.health()
            assert engine.info.model_name == "rise-synth" and engine.info.max_context == 1024 and engine.rise_upstream
            await engine.generate([[{"role": "user", "content": "2 + 2?"}]], SamplingParams())
        finally:
            await engine.aclose()
        assert up.requests[0]["rise"] == {"max_turns": 1} and up.requests[0]["model"] == "rise-synth"

    with FakeUpstream(lambda body, n: answer("4", stream=False)) as other:
        engine = OpenAIEngine(other.url)
        try:
            await engine.generate([[{"role": "user", "content": "2 + 2?"}]], SamplingParams())
        finally:
            await engine.aclose()
        assert "rise" not in other.requests[0] and other.requests[0]["model"] == "m"


def _assemble(rise: bool, deltas: list[dict]):
    from app.engines.openai_protocol import Chunk, StreamAssembler

    shown = []
    out = StreamAssembler(shown.append, rise)
    for d in deltas:
        out.feed(Chunk.model_validate({"choices": [{"delta": d}]}))
    out.feed(Chunk.model_validate({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}}))
    return out.completion().text, shown


def test_rise_serve_turn_tokens_stream_once_and_the_text_is_the_answer():
    text, shown = _assemble(True, [{"role": "assistant", "content": ""}, {"reasoning_content": "[turn 1]\n"},
                                   {"reasoning_content": "The answer"}, {"reasoning_content": " is 4."},
                                   {"reasoning_content": "\n[answer: 4 (unchecked)]\n"},
                                   {"content": "The answer is 4."}])
    assert text == "The answer is 4." and shown == ["The answer", " is 4."]


def test_reasoning_of_other_upstreams_streams_but_is_not_the_text():
    text, shown = _assemble(False, [{"reasoning_content": "2 and 2"}, {"reasoning": " make 4."},
                                    {"content": "The answer"}, {"content": " is 4."}])
    assert text == "The answer is 4." and shown == ["2 and 2", " make 4.", "The answer", " is 4."]
