"""Real clients, as a user would call them, against a real server (issue 18): the official `openai`
client, `langchain-openai` and `litellm` (pinned in the `test` extra), and request shapes recorded
from common front-ends. Few turns and few tokens, so the whole file stays fast."""

import asyncio
import json
import os

import httpx
import openai
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no download of its price list
pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning")  # litellm's types

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
ANSWER = "The answer is 31."
TWO_TURNS = {"rise": {"max_turns": 2}}


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def turns(completion) -> int:
    return len(completion.model_extra["rise"]["choices"][0]["turns"])


# -- openai ---------------------------------------------------------------------------------------

def test_openai_sync_with_the_neutral_fields_front_ends_send(client, model_name):
    r = client.chat.completions.create(
        model=model_name, messages=[{"role": "user", "content": Q}], temperature=0, max_completion_tokens=60,
        presence_penalty=0, frequency_penalty=0, logprobs=False, logit_bias={}, response_format={"type": "text"},
        tool_choice="none", parallel_tool_calls=True, store=False, metadata={"app": "tests"}, service_tier="auto",
        modalities=["text"], user="user-1", prediction=None, n=1, seed=7, stop=["\n\n\n"], extra_body=TWO_TURNS)
    msg = r.choices[0].message
    assert msg.content.endswith(ANSWER) and r.choices[0].finish_reason == "stop" and turns(r) == 2
    assert msg.model_extra["reasoning"] == msg.model_extra["reasoning_content"]
    assert msg.model_extra["reasoning"].count("[turn ") == 2


def test_openai_refuses_a_feature_not_offered_naming_it(client, model_name):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}],
                                       presence_penalty=0.7, extra_body=TWO_TURNS)
    assert e.value.body["param"] == "presence_penalty" and "unsupported" in e.value.body["message"]


async def test_openai_async_reasoning_effort_sets_the_turns(server, model_name):
    async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0) as c:
        rs = await asyncio.gather(*[c.chat.completions.create(
            model=model_name, messages=[{"role": "user", "content": Q}], temperature=0, max_tokens=60,
            reasoning_effort=effort) for effort in ("none", "minimal", "low", "medium")])
    assert [turns(r) for r in rs] == [1, 1, 2, 3]
    assert all(r.choices[0].message.content.endswith(ANSWER) for r in rs)


def test_openai_stream_sends_each_turn_in_both_reasoning_fields(client, model_name):
    stream = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}],
                                            temperature=0, max_tokens=60, stream=True,
                                            stream_options={"include_usage": True}, extra_body=TWO_TURNS)
    reasoning, reasoning_content, content, usage = "", "", "", None
    for chunk in stream:
        usage = chunk.usage or usage
        for c in chunk.choices:
            extra = c.delta.model_extra or {}
            reasoning += extra.get("reasoning") or ""
            reasoning_content += extra.get("reasoning_content") or ""
            content += c.delta.content or ""
    assert reasoning == reasoning_content and "[turn 1]" in reasoning and "[turn 2]" in reasoning
    assert content.endswith(ANSWER) and ANSWER not in content[:-len(ANSWER)]
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


# -- langchain-openai -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chat_model(server, model_name):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=model_name, base_url=f"{server}/v1", api_key="unused", temperature=0, max_tokens=60,
                      max_retries=0, extra_body=TWO_TURNS)


def test_langchain_invoke_and_stream(chat_model):
    r = chat_model.invoke(Q)
    assert r.content.endswith(ANSWER) and r.response_metadata["finish_reason"] == "stop"
    chunks = list(chat_model.stream(Q))
    assert "".join(c.content for c in chunks) == r.content


def test_langchain_batch_answers_each_question(chat_model):
    from app.tasks import synthetic

    probs = synthetic.problems(5, 3, synthetic.LEVELS["easy"])
    rs = chat_model.batch([p.question for p in probs])
    assert sum(r.content.endswith(f"The answer is {p.answer}.") for r, p in zip(rs, probs)) >= 2


def test_langchain_extra_body_reaches_the_loop(chat_model):
    one = chat_model.bind(extra_body={"rise": {"max_turns": 1}}).invoke(Q)
    three = chat_model.bind(extra_body={"rise": {"max_turns": 3}}).invoke(Q)
    assert three.usage_metadata["output_tokens"] == 3 * one.usage_metadata["output_tokens"]  # greedy: 3 equal turns
    with pytest.raises(openai.BadRequestError, match="rise.max_turns"):
        chat_model.bind(extra_body={"rise": {"max_turns": "3"}}).invoke(Q)


# -- litellm --------------------------------------------------------------------------------------

def _litellm_args(server, model_name) -> dict:
    return {"model": f"openai/{model_name}", "api_base": f"{server}/v1", "api_key": "unused", "temperature": 0,
            "max_tokens": 60, "messages": [{"role": "user", "content": Q}], "extra_body": TWO_TURNS}


def test_litellm_completion_shows_the_reasoning(server, model_name):
    import litellm

    msg = litellm.completion(**_litellm_args(server, model_name)).choices[0].message
    assert msg.content.endswith(ANSWER)
    assert msg.reasoning_content.startswith("[turn 1]\n") and "[turn 2]\n" in msg.reasoning_content


def test_litellm_stream_shows_the_reasoning(server, model_name):
    import litellm

    reasoning, content = "", ""
    for chunk in litellm.completion(**_litellm_args(server, model_name), stream=True):
        delta = chunk.choices[0].delta
        reasoning += getattr(delta, "reasoning_content", None) or ""
        content += delta.content or ""
    assert reasoning.startswith("[turn 1]\n") and "[turn 2]\n" in reasoning and "[answer: 31" in reasoning
    assert content.endswith(ANSWER) and "[turn" not in content


# -- recorded request shapes ----------------------------------------------------------------------

def _events(r: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


def test_open_webui_style_stream(server, model_name):
    """What Open WebUI sends for a chat: a system prompt, the earlier exchange, text as content
    parts, its sampling knobs and `stream_options`; it reads `reasoning` or `reasoning_content`."""
    body = {
        "stream": True, "model": model_name, "stream_options": {"include_usage": True},
        "messages": [
            {"role": "system", "content": "You are a careful math tutor."},
            {"role": "user", "content": "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?"},
            {"role": "assistant", "content": "12+5=17. The answer is 17."},
            {"role": "user", "content": [{"type": "text", "text": Q}]},
        ],
        "temperature": 0, "top_p": 1, "max_tokens": 60, "seed": 42, "frequency_penalty": 0, "presence_penalty": 0,
        "rise": {"max_turns": 1},
    }
    r = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    assert r.text.rstrip().endswith("data: [DONE]")
    events = _events(r)
    deltas = [e["choices"][0]["delta"] for e in events if e["choices"]]
    assert "".join(d.get("reasoning") or "" for d in deltas) == "".join(d.get("reasoning_content") or "" for d in deltas)
    trace = next(e["rise"] for e in events if "rise" in e)  # the tiny model may miss after the history
    assert "".join(d.get("content") or "" for d in deltas) == trace["turns"][-1]["text"] != ""
    *chunks, last = events
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0
    assert all("usage" in e and e["usage"] is None for e in chunks)


def test_a_client_that_sends_every_default(server, model_name):
    """A generated client that fills in each field of OpenAI's request with its documented default."""
    body = {
        "model": model_name, "messages": [{"role": "user", "content": Q, "name": None}],
        "frequency_penalty": 0, "presence_penalty": 0, "logit_bias": None, "logprobs": False, "top_logprobs": None,
        "max_tokens": None, "max_completion_tokens": 60, "n": 1, "seed": None, "stop": None, "stream": False,
        "stream_options": None, "temperature": 1, "top_p": 1, "response_format": {"type": "text"}, "tools": None,
        "tool_choice": None, "parallel_tool_calls": True, "functions": None, "function_call": None, "store": False,
        "metadata": None, "service_tier": "auto", "modalities": ["text"], "audio": None, "prediction": None,
        "web_search_options": None, "reasoning_effort": "low", "verbosity": "medium", "user": "",
        "safety_identifier": None, "prompt_cache_key": None, "prompt_cache_retention": None,
    }
    r = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=120)
    assert r.status_code == 200, r.text
    data = r.json()
    assert len(data["rise"]["choices"][0]["turns"]) == 2  # reasoning_effort "low"
    assert data["choices"][0]["message"]["content"] and data["usage"]["total_tokens"] > 0
