"""Chat with n > 1 when the deadline passes: each choice ends on its own (issue 13, item 8).

A scripted engine whose speed depends on the seed makes the race deterministic: choice i runs with
seed `seed + 7919 i`, its turn k with that + 1000 (k - 1); only the seeds listed as fast answer at once.
"""

import asyncio
import json

import httpx
import openai

from app.api.main import create_app
from app.config import Settings
from tests.fakes import FakeEngine, scripted


class SeedPaced(FakeEngine):
    """Answers at once for the seeds in `fast`; any other call outlasts every deadline."""

    def __init__(self, fast: set[int]) -> None:
        super().__init__(scripted(["4", "5", "6"]))
        self.fast = fast

    async def generate(self, prompts, params, on_delta=None):
        if params.seed not in self.fast:
            await asyncio.sleep(60)
        return await super().generate(prompts, params, on_delta)


def body(n: int, **extra) -> dict:
    return {"model": "fake", "messages": [{"role": "user", "content": "q"}], "n": n, "seed": 0,
            "rise": {"max_turns": 3, "timeout": 0.5, "tie_break": "first"}, **extra}  # ties: the earlier turn


async def post(engine, payload) -> httpx.Response:
    app = create_app(Settings(), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post("/v1/chat/completions", json=payload)


async def test_a_choice_without_a_turn_does_not_drop_the_others():
    # choice 0: turn 1 at once, turn 2 too slow; choice 1: turn 1 too slow; choice 2: turns 1 and 2 at once
    r = await post(SeedPaced({0, 2 * 7919, 2 * 7919 + 1000}), body(3))
    assert r.status_code == 200, r.text
    choices, traces = r.json()["choices"], r.json()["rise"]["choices"]
    assert [c["message"]["content"] for c in choices] == ["Some steps. The answer is 4.", "",
                                                           "Some steps. The answer is 5."]
    assert [c["finish_reason"] for c in choices] == ["stop", "length", "stop"]
    assert [t["stop_reason"] for t in traces] == ["deadline"] * 3
    assert [len(t["turns"]) for t in traces] == [1, 0, 2]
    assert traces[1]["final_answer"] is None and traces[1]["final_turn"] == 0
    assert r.json()["usage"]["completion_tokens"] > 0


async def test_504_only_when_no_choice_finished_a_turn():
    r = await post(SeedPaced(set()), body(2))
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"


async def test_the_official_client_reads_a_partly_finished_reply():
    app = create_app(Settings(), engine=SeedPaced({7919}))
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/v1")
    client = openai.AsyncOpenAI(api_key="none", base_url="http://t/v1", http_client=http, max_retries=0)
    r = await client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "q"}], n=2, seed=0,
                                             extra_body={"rise": {"max_turns": 2, "timeout": 0.5}})
    assert [c.message.content for c in r.choices] == ["", "Some steps. The answer is 4."]
    assert [c.finish_reason for c in r.choices] == ["length", "stop"]
    await http.aclose()


async def test_streaming_ends_each_choice_with_its_own_outcome():
    r = await post(SeedPaced({0}), body(2, stream=True))
    assert r.status_code == 200
    events = [line.removeprefix("data: ") for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]" and "error" not in r.text
    chunks = [json.loads(e) for e in events[:-1]]
    finals = {c["choices"][0]["index"]: c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]}
    assert {i: c["choices"][0]["finish_reason"] for i, c in finals.items()} == {0: "stop", 1: "length"}
    assert finals[0]["rise"]["stop_reason"] == finals[1]["rise"]["stop_reason"] == "deadline"
    assert [len(finals[i]["rise"]["turns"]) for i in (0, 1)] == [1, 0]
    content = {}
    for c in chunks:
        for ch in c["choices"]:
            content[ch["index"]] = content.get(ch["index"], "") + (ch["delta"].get("content") or "")
    assert content == {0: "Some steps. The answer is 4.", 1: ""}


async def test_streaming_with_no_finished_choice_is_an_error_event():
    r = await post(SeedPaced(set()), body(2, stream=True))
    assert "timeout" in r.text and r.text.rstrip().endswith("data: [DONE]")
