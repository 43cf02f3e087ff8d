"""Real clients of the Responses API (issue 30) against a real `rise serve`, each plain, streamed, with
`reasoning.effort`, with RISE options in `extra_body` and with an error case: the OpenAI Agents SDK
(an `Agent` on an `OpenAIResponsesModel`, run with `Runner`), LangChain's
`ChatOpenAI(use_responses_api=True)` and LiteLLM's `responses()`, pinned in the `test` extra.

    .venv/bin/python -m pytest -q tests/api/test_responses_clients.py
"""

import os

import openai
import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm: no download of its price list
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # the Agents SDK: no trace upload to OpenAI
pytestmark = pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning",
                                        "ignore:Pydantic serializer warnings:UserWarning")  # litellm's types

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
ANSWER = "The answer is 31."
TWO = {"rise": {"max_turns": 2}}


# -- the OpenAI Agents SDK ------------------------------------------------------------------------

def _agent(server, model_name, **settings):
    from agents import Agent, ModelSettings, OpenAIResponsesModel, set_tracing_disabled

    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    model = OpenAIResponsesModel(model=model_name, openai_client=client)
    return Agent(name="arithmetic", model=model, model_settings=ModelSettings(temperature=0, **settings))


async def test_agents_sdk_runner_gets_the_refined_answer(server, model_name):
    from agents import Runner
    from agents.items import MessageOutputItem, ReasoningItem

    result = await Runner.run(_agent(server, model_name, extra_body=TWO), Q)
    assert result.final_output.endswith(ANSWER)
    assert [type(i) for i in result.new_items] == [ReasoningItem, ReasoningItem, MessageOutputItem]
    [raw] = result.raw_responses
    assert raw.usage.output_tokens_details.reasoning_tokens > 0


async def test_agents_sdk_streamed_with_effort(server, model_name):
    from agents import Runner
    from openai.types.shared import Reasoning

    run = Runner.run_streamed(_agent(server, model_name, reasoning=Reasoning(effort="none", summary="auto")), Q)
    kinds = [e.data.type async for e in run.stream_events() if e.type == "raw_response_event"]
    assert run.final_output.endswith(ANSWER)
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.count("response.reasoning_summary_text.done") == 1  # effort none: one turn


async def test_agents_sdk_sees_a_bad_rise_option_as_a_400(server, model_name):
    from agents import Runner

    with pytest.raises(openai.BadRequestError, match="rise.samples_per_turn"):
        await Runner.run(_agent(server, model_name, extra_body={"rise": {"samples_per_turn": 99}}), Q)


# -- langchain-openai -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chat_model(server, model_name):
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=model_name, base_url=f"{server}/v1", api_key="unused", temperature=0, max_retries=0,
                      use_responses_api=True, extra_body=TWO)


def test_langchain_invoke_and_stream(chat_model):
    r = chat_model.invoke(Q)
    assert r.text.endswith(ANSWER) and r.response_metadata["id"].startswith("resp_")
    assert [b["type"] for b in r.content] == ["reasoning", "reasoning", "text"]
    assert r.usage_metadata["output_token_details"]["reasoning"] > 0
    chunks = list(chat_model.stream(Q))
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.text == r.text


def test_langchain_effort_and_extra_body_reach_the_loop(chat_model):
    one = chat_model.bind(reasoning={"effort": "none"}, extra_body={}).invoke(Q)  # rise.max_turns would win
    three = chat_model.bind(extra_body={"rise": {"max_turns": 3}}).invoke(Q)
    assert one.text.endswith(ANSWER) and three.text.endswith(ANSWER)
    assert three.usage_metadata["output_tokens"] == 3 * one.usage_metadata["output_tokens"]  # greedy: 3 equal turns
    with pytest.raises(openai.BadRequestError, match="rise.max_turns"):
        chat_model.bind(extra_body={"rise": {"max_turns": "3"}}).invoke(Q)


def test_langchain_sends_the_conversation_back_with_its_reasoning(chat_model):
    first = chat_model.invoke(Q)
    r = chat_model.invoke([("user", Q), first, ("user", "Mia has 12 pens. She buys 5 more. How many pens now?")])
    assert r.text and r.response_metadata["status"] == "completed"  # its reasoning items were accepted as input


# -- litellm --------------------------------------------------------------------------------------

def _litellm(server, model_name, **kw):
    import litellm

    return litellm.responses(model=f"openai/{model_name}", api_base=f"{server}/v1", api_key="unused", input=Q,
                             temperature=0, **kw)


def test_litellm_responses_plain_and_with_effort(server, model_name):
    r = _litellm(server, model_name, extra_body=TWO)
    assert r.status == "completed" and [o.type for o in r.output] == ["reasoning", "reasoning", "message"]
    assert r.output[-1].content[0].text.endswith(ANSWER) and r.usage.output_tokens_details.reasoning_tokens > 0
    low = _litellm(server, model_name, reasoning={"effort": "none"})
    assert [o.type for o in low.output] == ["reasoning", "message"]


def test_litellm_responses_stream(server, model_name):
    events = list(_litellm(server, model_name, stream=True, extra_body=TWO))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    final = events[-1].response
    assert final.output[-1].content[0].text.endswith(ANSWER)


def test_litellm_responses_error_names_the_field(server, model_name):
    import litellm

    with pytest.raises(litellm.BadRequestError, match="rise.max_turns"):
        _litellm(server, model_name, extra_body={"rise": {"max_turns": "3"}})
