"""Past one engine (issue 32): the session key that keeps a sample's turns on one upstream replica,
and a turn run again when its upstream broke off mid-turn. The remote engine against a real HTTP
upstream that fails on purpose (tests/engines/flaky_upstream.py), through the loop and through a
real `rise serve --engine openai`.

    .venv/bin/pytest -q -n 0 tests/engines/test_turn_retry.py
"""

from __future__ import annotations

import json

import httpx
import pytest

from app import metrics
from app.answers.checker import get_checker
from app.engines.base import SamplingParams
from app.engines.openai_remote import OpenAIEngine, UpstreamBrokeOff, UpstreamUnavailable
from app.refine.loop import refine
from app.refine.types import RefineConfig
from tests.engines.flaky_upstream import TEXT, FlakyUpstream
from tests.servers import start_server, stop_server

Q = "Sam has 2 apples. He buys 2 more. How many apples does Sam have now?"
CHECK = get_checker("synthetic")


def _retries() -> float:
    return metrics.TURN_RETRIES.labels("m")._value.get()


async def _refine(up: FlakyUpstream, turns: int = 2, samples: int = 1, engine_kw: dict | None = None, **kw):
    engine = OpenAIEngine(up.url, **{"max_retries": 0, "backoff_s": 0.01, **(engine_kw or {})})
    config = RefineConfig(max_turns=turns, samples_per_turn=samples, sampling=SamplingParams(seed=7, temperature=0.7))
    try:
        return await refine(engine, Q, CHECK, config, **{"session": "rr-" + "a" * 32, **kw})
    finally:
        await engine.aclose()


# affinity -----------------------------------------------------------------------------------------

async def test_each_sample_keeps_one_session_key_over_all_turns():
    with FlakyUpstream() as up:
        r = await _refine(up, turns=3, samples=2)
    assert len(r.turns) == 3 and len(up.bodies) == 6
    by_seed: dict[int, set] = {}
    for body, key in zip(up.bodies, up.session_keys()):
        by_seed.setdefault(body["seed"] % 1000, set()).add(key)
    assert set(by_seed) == {7, 8}  # sample j has seed + j at every turn
    assert all(len(keys) == 1 for keys in by_seed.values())  # one key per sample, the same at every turn
    key0, key1 = by_seed[7].pop(), by_seed[8].pop()
    assert key0 != key1 and len(key0) == 32 and "a" * 32 not in key0  # derived, not the trace id itself


async def test_refinements_get_different_keys_and_none_outside_a_refinement():
    with FlakyUpstream() as up:
        await _refine(up, turns=1, session="rr-" + "b" * 32)
        await _refine(up, turns=1, session="rr-" + "c" * 32)
        await _refine(up, turns=1, session=None)
    a, b, none = up.session_keys()
    assert a and b and a != b and none is None


async def test_the_header_name_is_a_setting_and_empty_sends_none():
    with FlakyUpstream() as up:
        await _refine(up, turns=1, engine_kw={"session_header": "x-user-id"})
        await _refine(up, turns=1, engine_kw={"session_header": ""})
    assert up.session_keys("x-user-id")[0] and up.session_keys("x-user-id")[1] is None
    assert up.session_keys() == [None, None]


@pytest.mark.parametrize("name", ["Authorization", "host", "Content-Length", "Transfer-Encoding", "Connection",
                                  "Content-Type", "Cookie"])
def test_a_session_header_that_would_replace_one_the_call_needs_is_refused(name):
    """The session key would overwrite the upstream's bearer key, the body's framing or its type:
    RISE_UPSTREAM_SESSION_HEADER refuses those names (rise serve exits 2 naming the setting)."""
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError, match="upstream_session_header"):
        Settings(upstream_session_header=name)
    assert Settings(upstream_session_header="x-user-id").upstream_session_header == "x-user-id"


# turn retry ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["reset", "cut", "500"])
async def test_a_turn_that_broke_off_runs_again_once_with_the_same_seed(failure):
    before = _retries()
    fails = [failure]
    with FlakyUpstream(["ok", *fails]) as up:
        r = await _refine(up, turns=2)
    assert [t.text for t in r.turns] == [TEXT, TEXT] and r.stop_reason == "max_turns"
    assert len(up.bodies) == 2 + len(fails) and all(b == up.bodies[1] for b in up.bodies[2:])  # same prompt, seed
    assert len(set(up.session_keys()[1:])) == 1  # and to the same replica
    assert _retries() == before + 1


async def test_once_by_default_then_the_error_as_before():
    before = _retries()
    with FlakyUpstream(["cut", "cut"]) as up:
        with pytest.raises(UpstreamBrokeOff, match="broke off"):
            await _refine(up, turns=1)
    assert len(up.bodies) == 2 and _retries() == before + 1


async def test_no_retry_when_turn_retries_is_0():
    with FlakyUpstream(["reset", "reset"]) as up:  # the first call rides the /models check's connection:
        with pytest.raises(UpstreamUnavailable):  # the engine sends it once more, and no turn retry follows
            await _refine(up, turns=1, turn_retries=0)
    assert len(up.bodies) == 2


async def test_a_connection_of_its_own_closed_before_any_answer_is_not_sent_again_by_the_engine():
    """The engine sends a call once more only when it went out on a kept-alive connection
    (tests/engines/test_openai_remote_faults.py); this upstream closes its connection after each
    streamed answer, so each call opens one of its own: its close is the turn's failure."""
    with FlakyUpstream(["ok", "close"]) as up:
        with pytest.raises(UpstreamBrokeOff, match="without sending a response"):
            await _refine(up, turns=2, turn_retries=0)
    assert len(up.bodies) == 2


async def test_a_turn_whose_deltas_reached_the_client_is_never_sent_again():
    before, events = _retries(), []
    with FlakyUpstream(["cut"]) as up:
        with pytest.raises(UpstreamBrokeOff):
            await _refine(up, turns=1, on_event=events.append)
    assert len(up.bodies) == 1 and _retries() == before
    assert [e["text"] for e in events if e["type"] == "delta"] == ["The", " answer"]


async def test_a_streamed_turn_that_failed_before_any_delta_runs_again():
    events = []
    with FlakyUpstream(["reset"]) as up:
        r = await _refine(up, turns=1, on_event=events.append)
    assert r.turns[0].text == TEXT and len(up.bodies) == 2
    assert "".join(e["text"] for e in events if e["type"] == "delta") == TEXT  # each token once


async def test_a_failing_sample_stops_its_siblings_and_the_turn_runs_again():
    with FlakyUpstream(["ok", "ok", "reset"]) as up:  # turn 2's first sample fails
        r = await _refine(up, turns=2, samples=2)
    assert len(r.turns) == 2 and all(s.text == TEXT for s in r.turns[1].samples)


# through a real server ----------------------------------------------------------------------------

def test_rise_serve_retries_a_broken_turn_and_counts_it():
    with FlakyUpstream(["ok", "cut", "ok", "cut"]) as up:
        proc, url, _ = start_server({"RISE_ENGINE": "openai", "RISE_BASE_URL": up.url})
        try:
            r = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 2, "seed": 3}, timeout=60)
            assert r.status_code == 200, r.text
            assert [t["text"] for t in r.json()["turns"]] == [TEXT, TEXT]
            assert up.bodies[1] == up.bodies[2]
            keys = up.session_keys()
            assert keys[0] and keys[0] == keys[1] == keys[2]  # every turn of the refinement, one key
            # streamed: turn 1's tokens went out, then its stream is cut: no retry, an error event
            with httpx.stream("POST", f"{url}/v1/refine", json={"question": Q, "max_turns": 1, "stream": True},
                              timeout=60) as s:
                lines = [ln for ln in s.iter_lines() if ln]
            error = json.loads(lines[lines.index("event: error") + 1].removeprefix("data: "))
            assert error["error"]["code"] == "upstream_unavailable" and lines[-1] == "data: [DONE]"
            assert len(up.bodies) == 4 and keys[0] != up.session_keys()[3]
            text = httpx.get(f"{url}/metrics").text
            assert 'rise_turn_retries_total{model_name="m"} 1.0' in text
        finally:
            stop_server(proc)
