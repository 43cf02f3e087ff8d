"""Through the chat API on the real embedded engine (in-process, the official client): a tiny
temperature answers like temperature 0, and stop strings cut at the earliest match, in the
answer and in the streamed turn (issue 13, items 9 and 10)."""

import asyncio

import httpx
import openai
import pytest

from app.api.main import create_app
from app.config import Settings
from app.engines.hf import HFEngine

# greedy: "5*2=10. 10-10=0. 0+2=2. 2-1=1. The answer is 1." (pinned: the expectations below are cut from it)
QUESTION = ("Ana has 5 apples. She ends up with 2 times as many. Then she loses 10. Then she finds 2 more. "
            "Then she gives away 1. How many apples does Ana have now?")
ONE_TURN = {"rise": {"max_turns": 1}}


@pytest.fixture(scope="module")
def engine(model_path):
    e = HFEngine(model_path, max_batch_size=8)
    yield e
    asyncio.run(e.aclose())


@pytest.fixture
async def client(engine):
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(Settings(), engine=engine)),
                             base_url="http://t/v1")
    yield openai.AsyncOpenAI(api_key="none", base_url="http://t/v1", http_client=http, max_retries=0)
    await http.aclose()


async def ask(client, engine, **kw):
    return await client.chat.completions.create(model=engine.info.model_name, max_tokens=60, extra_body=ONE_TURN,
                                                messages=[{"role": "user", "content": QUESTION}], **kw)


async def test_a_tiny_temperature_answers_like_temperature_zero(client, engine):
    greedy = (await ask(client, engine, temperature=0)).choices[0].message.content
    assert greedy.endswith("The answer is 1.")
    for t in (1e-45, 1e-30, 5e-6):
        assert (await ask(client, engine, temperature=t, seed=3)).choices[0].message.content == greedy, t


@pytest.mark.parametrize("stop", [["swer", " an"], [" an", "swer"]])
async def test_stop_strings_cut_at_the_earliest_match(client, engine, stop):
    r = await ask(client, engine, temperature=0, stop=stop)
    assert r.choices[0].message.content == "5*2=10. 10-10=0. 0+2=2. 2-1=1. The"
    assert r.choices[0].finish_reason == "stop"


async def test_a_streamed_turn_stops_at_the_earliest_match_too(client, engine):
    stream = await ask(client, engine, temperature=0, stop=["swer", " an"], stream=True)
    reasoning, content = "", ""
    async for chunk in stream:
        for c in chunk.choices:
            reasoning += getattr(c.delta, "reasoning_content", None) or ""
            content += c.delta.content or ""
    turn = reasoning.removeprefix("[turn 1]\n").split("\n[answer:")[0]
    assert turn == content == "5*2=10. 10-10=0. 0+2=2. 2-1=1. The"
