"""The remote engine against upstreams that misbehave: garbage replies, errors inside a stream,
rate limits, slow answers. Each upstream is a real HTTP server on 127.0.0.1 (tests/engines/fake_upstream.py)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.api.main import create_app
from app.config import Settings
from app.engines.base import PromptTooLongError, SamplingParams
from app.engines.openai_remote import OpenAIEngine, UpstreamBusy, UpstreamError, UpstreamRejected, UpstreamUnavailable
from tests.engines.fake_upstream import FakeUpstream, Reply, answer, chunk

CONV = [{"role": "user", "content": "What is 2 + 2?"}]
GOOD_USAGE = {"prompt_tokens": 5, "completion_tokens": 2}


async def _generate(up: FakeUpstream, stream: bool = False, **kw):
    engine = OpenAIEngine(up.url, **{"max_retries": 2, "backoff_s": 0.01, **kw})
    try:
        [[c]] = await engine.generate([CONV], SamplingParams(max_tokens=8),
                                      on_delta=(lambda i, j, t: None) if stream else None)
        return c
    finally:
        await engine.aclose()


def _always(reply: Reply):
    return FakeUpstream(lambda body, n: reply)


def _slow(reply: Reply, delay: float) -> Reply:
    reply.delay = delay
    return reply


def _chat_app(up: FakeUpstream, **settings):
    engine = OpenAIEngine(up.url, max_retries=1, backoff_s=0.01, timeout_s=settings.get("request_timeout_s", 300))
    app = create_app(Settings(**{"engine_failures_unready": 3, **settings}), engine=engine)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t")
    return engine, client


# item 7: garbage is a 502 upstream_error -------------------------------------------------------

BAD_REPLIES = [
    {"choices": [{"message": {"content": "4"}}], "usage": {"completion_tokens": 2}},  # no prompt_tokens
    {"choices": [{"message": {"content": "4"}}], "usage": {"prompt_tokens": "x", "completion_tokens": 2}},
    {"choices": [{"message": {"content": "4"}}], "usage": {"prompt_tokens": 1.5, "completion_tokens": 2}},
    {"choices": [1, 2], "usage": GOOD_USAGE},
    {"choices": [], "usage": GOOD_USAGE},
    {"choices": [{"message": "oops"}], "usage": GOOD_USAGE},
    {"choices": [{"message": {"content": 5}}], "usage": GOOD_USAGE},
    {"choices": [{"message": {"content": "4"}}]},  # no usage
    [1, 2],
    "just a string",
]

BAD_CHUNKS = [
    [1, 2],
    {"choices": [{"delta": "oops"}]},
    {"choices": [{"delta": {"content": 5}}]},
    {"choices": "x"},
    {"choices": [], "usage": {"prompt_tokens": "x", "completion_tokens": 1}},
    {"choices": [], "usage": {"completion_tokens": 1}},
]


@pytest.mark.parametrize("body", BAD_REPLIES)
async def test_invalid_completion_is_an_upstream_error(body):
    with _always(Reply(body=body)) as up:
        with pytest.raises(UpstreamError, match="invalid chat completion"):
            await _generate(up)


@pytest.mark.parametrize("bad", BAD_CHUNKS)
async def test_invalid_stream_chunk_is_an_upstream_error(bad):
    events = [chunk({"content": "4"}), bad, {"choices": [], "usage": GOOD_USAGE}]
    with _always(Reply(events=events)) as up:
        with pytest.raises(UpstreamError, match="invalid stream chunk"):
            await _generate(up, stream=True)


async def test_extra_fields_are_fine_and_null_content_is_empty():
    reply = Reply(body={"choices": [{"message": {"content": None, "tool_calls": []}, "finish_reason": "length",
                                     "logprobs": None, "stop_reason": None}],
                        "usage": {**GOOD_USAGE, "total_tokens": 7, "prompt_tokens_details": None},
                        "system_fingerprint": "x"})
    with _always(reply) as up:
        c = await _generate(up)
    assert (c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason) == ("", 5, 2, "length")


@pytest.mark.parametrize("bad", BAD_CHUNKS[:3])
async def test_garbage_through_the_api_is_502_and_counts_as_engine_failure(bad):
    with _always(Reply(events=[bad])) as up:
        engine, c = _chat_app(up)
        async with c:
            for _ in range(3):
                r = await c.post("/v1/refine", json={"question": "What is 2 + 2?", "max_turns": 1})
                assert r.status_code == 502, r.text
                assert r.json()["error"]["code"] == "upstream_error" and r.json()["error"]["param"] is None
            assert (await c.get("/ready")).status_code == 503
        await engine.aclose()


@pytest.mark.parametrize("status,error,too_long", [
    (400, {"message": "temperature: the maximum value is 2", "type": "invalid_request_error"}, False),
    (400, {"message": "max_tokens must be at most 4096 (maximum)"}, False),
    (422, {"message": "field required: messages"}, False),
    (400, {"message": "This model's maximum context length is 1024 tokens. However, you requested 1500 tokens",
           "code": None}, True),
    (400, {"message": "The decoder prompt (length 1500) is longer than the maximum model length of 1024.",
           "type": "BadRequestError", "code": 400}, True),
    (400, {"message": "Request too large", "code": "context_length_exceeded"}, True),
    (400, {"message": "prompt 0 has 2000 tokens; the model's context is 1024 tokens",
           "code": "context_length_exceeded"}, True),
])
async def test_only_context_refusals_are_prompt_too_long(status, error, too_long):
    with _always(Reply(status, {"error": error})) as up:
        with pytest.raises(PromptTooLongError if too_long else UpstreamRejected):
            await _generate(up)
        assert len(up.requests) == 1  # a refusal is not retried


async def test_a_misconfigured_engine_is_a_fault():
    with _always(Reply(401, {"error": {"message": "bad key"}})) as up:
        with pytest.raises(UpstreamError) as e:
            await _generate(up)
    assert e.value.fault and not isinstance(e.value, UpstreamRejected) and "bad key" in str(e.value)


# item 13: errors inside a stream ---------------------------------------------------------------

CONTEXT_ERROR = {"error": {"message": "prompt 0 has 1500 tokens; the model's context is 1024 tokens",
                           "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}


@pytest.mark.parametrize("event", [
    CONTEXT_ERROR,
    {"object": "error", "message": "This model's maximum context length is 1024 tokens.", "type": "BadRequestError",
     "code": 400},
])
async def test_context_error_inside_a_stream_is_prompt_too_long(event):
    with _always(Reply(events=[event])) as up:
        with pytest.raises(PromptTooLongError, match="context"):
            await _generate(up, stream=True)


async def test_other_error_inside_a_stream_carries_the_upstreams_message():
    event = {"error": {"message": "engine error: the GPU caught fire", "type": "server_error", "code": "engine_error"}}
    with _always(Reply(events=[chunk({"content": "4"}), event])) as up:
        with pytest.raises(UpstreamError, match="the GPU caught fire") as e:
            await _generate(up, stream=True)
    assert e.value.fault and len(up.requests) == 1


async def test_over_long_questions_are_client_errors_and_do_not_flip_readiness():
    with _always(Reply(events=[CONTEXT_ERROR])) as up:
        engine, c = _chat_app(up)
        async with c:
            for i in range(6):
                r = await c.post("/v1/refine", json={"question": "What is 2 + 2? " * 50, "stream": i % 2 == 1})
                if i % 2 == 0:
                    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded", r.text
                else:
                    assert "context_length_exceeded" in r.text and r.text.rstrip().endswith("[DONE]")
            r = await c.post("/v1/chat/completions", json={"model": "m", "messages": CONV})
            assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
            assert (await c.get("/ready")).status_code == 200
        await engine.aclose()


async def test_turn_two_outgrowing_the_context_keeps_turn_one():
    def chat(body, n):
        if len(body["messages"]) > 1:
            return Reply(events=[CONTEXT_ERROR])
        return answer("The answer is 4.", stream=body.get("stream", False))

    with FakeUpstream(chat) as up:
        engine, c = _chat_app(up)
        async with c:
            r = await c.post("/v1/refine", json={"question": "What is 2 + 2?", "max_turns": 3, "window": "full"})
        await engine.aclose()
    assert r.status_code == 200, r.text
    assert r.json()["stop_reason"] == "context_length" and len(r.json()["turns"]) == 1
    assert r.json()["final_answer"] == "4"


# item 14: rate limits -------------------------------------------------------------------------

async def test_retry_after_that_fits_is_honoured():
    def chat(body, n):
        return Reply(429, {"error": {"message": "slow down"}}, headers={"Retry-After": "1"}) if n == 0 else \
            answer("The answer is 4.", stream=body.get("stream", False))

    with FakeUpstream(chat) as up:
        start = time.monotonic()
        c = await _generate(up, stream=True, timeout_s=10)
        waited = time.monotonic() - start
    assert c.text == "The answer is 4." and len(up.requests) == 2 and waited >= 0.9


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_past_the_deadline_is_passed_on(status):
    with _always(Reply(status, {"error": {"message": "busy"}}, headers={"Retry-After": "7"})) as up:
        with pytest.raises(UpstreamBusy) as e:
            await _generate(up, timeout_s=5)
        assert len(up.requests) == 1
    assert (e.value.status, e.value.retry_after, e.value.fault) == (status, 7, False)


@pytest.mark.parametrize("status,code", [(429, "rate_limit_exceeded"), (503, "upstream_unavailable")])
async def test_api_passes_retry_after_on_and_stays_ready(status, code):
    with _always(Reply(status, {"error": {"message": "busy"}}, headers={"Retry-After": "7"})) as up:
        engine, c = _chat_app(up, request_timeout_s=5)
        async with c:
            for _ in range(5):
                r = await c.post("/v1/refine", json={"question": "What is 2 + 2?", "max_turns": 1})
                assert r.status_code == status and r.headers["retry-after"] == "7", r.text
                assert r.json()["error"]["code"] == code
            r = await c.post("/v1/chat/completions", json={"model": "m", "messages": CONV})
            assert r.status_code == status and r.headers["retry-after"] == "7"
            assert (await c.get("/ready")).status_code == 200
        await engine.aclose()


async def test_a_request_timeout_shorter_than_retry_after_gets_the_429_at_once():
    """The request's own `timeout` (3 s) does not leave room for Retry-After 7 s, although the
    server's RISE_REQUEST_TIMEOUT_S would: the client gets the 429 and its Retry-After now."""
    with _always(Reply(429, {"error": {"message": "busy"}}, headers={"Retry-After": "7"})) as up:
        engine, c = _chat_app(up, request_timeout_s=60)
        async with c:
            t = time.monotonic()
            r = await c.post("/v1/refine", json={"question": "What is 2 + 2?", "max_turns": 1, "timeout": 3})
            took = time.monotonic() - t
        await engine.aclose()
    assert r.status_code == 429 and r.headers["retry-after"] == "7" and took < 2, (r.status_code, took)
    assert len(up.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_stop_strings_cut_at_the_earliest_match(stream):
    """An upstream that matched stop strings in list order: the text is cut at the earliest one."""
    with _always(answer("So The answer is 4.", stream=stream)) as up:
        engine = OpenAIEngine(up.url, max_retries=0)
        try:
            [[c]] = await engine.generate([CONV], SamplingParams(max_tokens=8, stop=("swer", " an")),
                                          on_delta=(lambda i, j, t: None) if stream else None)
        finally:
            await engine.aclose()
    assert c.text == "So The" and c.finish_reason == "stop"


# item 15: timeouts and what is sent again -------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True])
async def test_a_slow_upstream_gets_the_generation_once(stream):
    with FakeUpstream(lambda body, n: _slow(answer("4", stream=stream), 2.5)) as up:
        with pytest.raises(UpstreamUnavailable, match="in time"):
            await _generate(up, stream=stream, timeout_s=1, max_retries=3)
        time.sleep(0.2)
        assert len(up.requests) == 1


async def test_a_broken_connection_after_sending_is_sent_again_once_only_when_it_was_kept_alive():
    """The call goes out on the connection kept alive from the /models check: closed with no answer,
    it may be one the upstream (or a load balancer) had dropped, so it is sent once more, on a
    connection of its own; closed again there, it is the call's failure (cluster bed, issue 32)."""
    def chat(body, n):
        raise ConnectionResetError  # the handler dies: the connection closes with no response

    with FakeUpstream(chat) as up:
        with pytest.raises(UpstreamUnavailable):
            await _generate(up, max_retries=3)
        assert len(up.requests) == 2


async def test_a_kept_alive_connection_dropped_before_the_call_costs_nothing():
    def chat(body, n):
        if n == 0:
            raise ConnectionResetError
        return answer("The answer is 4.", stream=True)

    with FakeUpstream(chat) as up:
        c = await _generate(up, stream=True, max_retries=0)
    assert c.text == "The answer is 4." and len(up.requests) == 2


async def test_server_errors_are_retried():
    def chat(body, n):
        return Reply(500, {"error": {"message": "oops"}}) if n < 2 else answer("The answer is 4.", stream=True)

    with FakeUpstream(chat) as up:
        c = await _generate(up, stream=True, max_retries=3)
    assert c.text == "The answer is 4." and len(up.requests) == 3


async def test_the_server_passes_its_request_timeout_to_the_engine():
    from app.api.main import _load

    with _always(Reply(body={})) as up:
        settings = Settings(engine="openai", base_url=up.url, request_timeout_s=42)
        app = create_app(settings)
        await _load(app, settings)
        engine = app.state.engine
        try:
            assert engine.timeout_s == 42 and engine.client.timeout.read == 42
        finally:
            await engine.aclose()


async def test_a_slow_upstream_within_the_timeout_answers():
    with FakeUpstream(lambda body, n: _slow(answer("The answer is 4.", stream=True), 1.5)) as up:
        c = await asyncio.wait_for(_generate(up, stream=True, timeout_s=5), 10)
    assert c.text == "The answer is 4." and len(up.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_credentials_in_the_upstream_url_never_reach_a_message(stream):
    """An upstream URL may carry credentials (`http://user:pass@host/v1`, `?api-key=`): the engine
    still uses them, but its error messages (which become the client's error) and its info (/ready)
    show the URL without them."""
    seen: list[str] = []

    def reply(body, n):
        seen.append(body.get("model"))
        return Reply(500, {"error": {"message": "the engine died", "type": "server_error"}})

    with FakeUpstream(reply) as up:
        url = up.url.replace("http://", "http://admin:S3CRET@") + "?api-key=QSECRET"
        engine = OpenAIEngine(url, max_retries=0, backoff_s=0.01)
        try:
            with pytest.raises(Exception) as e:
                await engine.generate([CONV], SamplingParams(max_tokens=8),
                                      on_delta=(lambda i, j, t: None) if stream else None)
            shown = f"{e.value} {engine.info.extra}"
            assert seen and "the engine died" in str(e.value)  # the upstream was reached and answered
            assert "S3CRET" not in shown and "QSECRET" not in shown and "admin" not in shown, shown
        finally:
            await engine.aclose()
