"""The OpenAI-compatible endpoint driven by the official `openai` client: sync, async, streaming."""

import asyncio

import openai
import pytest

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)


def test_models_list(client, model_name):
    assert [m.id for m in client.models.list().data] == [model_name]


def test_chat_completion_with_oracle_stops_early_and_hides_the_reference(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}], temperature=0,
                                       extra_body={"rise": {"max_turns": 5, "reference": "31"}})
    assert r.object == "chat.completion" and r.choices[0].message.content.endswith("The answer is 31.")
    trace = r.model_extra["rise"]["choices"][0]
    assert trace["stop_reason"] == "correct" and len(trace["turns"]) == 1 and trace["mode"] == "oracle"
    # a reference the model never reaches: every turn runs and the reference appears nowhere
    r = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}], temperature=0,
                                       extra_body={"rise": {"max_turns": 3, "reference": "918273"}})
    assert "918273" not in r.model_dump_json()
    assert len(r.model_extra["rise"]["choices"][0]["turns"]) == 3


def test_no_oracle_runs_all_turns_and_usage_adds_up(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}], temperature=0,
                                       extra_body={"rise": {"max_turns": 3}})
    trace = r.model_extra["rise"]["choices"][0]
    assert len(trace["turns"]) == 3 and trace["stop_reason"] == "max_turns" and trace["final_answer"] == "31"
    assert r.usage.prompt_tokens == sum(t["prompt_tokens"] for t in trace["turns"])
    assert r.usage.completion_tokens == sum(t["completion_tokens"] for t in trace["turns"])
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.choices[0].finish_reason == "stop"


def test_n_choices_and_context_messages(client, model_name):
    r = client.chat.completions.create(
        model=model_name, n=3, temperature=1.0, seed=4, max_tokens=100,
        messages=[{"role": "system", "content": "Solve step by step."}, {"role": "user", "content": Q}],
        extra_body={"rise": {"max_turns": 2}})
    assert [c.index for c in r.choices] == [0, 1, 2]
    traces = r.model_extra["rise"]["choices"]
    assert len(traces) == 3
    assert r.usage.completion_tokens == sum(t["usage"]["completion_tokens"] for t in traces)


def test_streaming_sends_turns_as_reasoning_then_the_answer(client, model_name):
    stream = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}],
                                            temperature=0, stream=True, stream_options={"include_usage": True},
                                            extra_body={"rise": {"max_turns": 2}})
    reasoning, content, finish, usage = "", "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            reasoning += (c.delta.model_extra or {}).get("reasoning_content") or ""
            content += c.delta.content or ""
            finish = c.finish_reason or finish
    assert "[turn 1]" in reasoning and "[turn 2]" in reasoning
    assert reasoning.index("[turn 1]") < reasoning.index("The answer is 31.") < reasoning.index("[turn 2]")
    assert content.endswith("The answer is 31.") and finish == "stop"
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0


async def test_async_client_with_16_concurrent_requests(server, model_name):
    client = openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    from app.tasks import synthetic

    probs = synthetic.problems(99, 16, synthetic.LEVELS["easy"])
    rs = await asyncio.gather(*[client.chat.completions.create(
        model=model_name, messages=[{"role": "user", "content": p.question}], temperature=0,
        extra_body={"rise": {"max_turns": 2, "reference": p.answer}}) for p in probs])
    solved = sum(r.model_extra["rise"]["choices"][0]["correct"] for r in rs)
    assert len(rs) == 16 and solved >= 14  # each request got its own question's answer
    await client.close()


@pytest.mark.parametrize("kwargs,status,param", [
    ({"model": "gpt-4"}, 404, "model"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
    ({"temperature": -0.5}, 400, "temperature"),
    ({"max_tokens": 100000}, 400, "max_tokens"),
    ({"extra_body": {"rise": {"max_turns": 10000}}}, 400, "rise.max_turns"),
    ({"logprobs": True, "top_logprobs": 2}, 400, "top_logprobs"),
    ({"extra_body": {"rise": {"beam": 3}}}, 400, "rise.beam"),
    ({"messages": [{"role": "user", "content": "Sam has 3 apples. " * 3000}]}, 400, "messages"),
])
def test_bad_requests_get_openai_errors(client, model_name, kwargs, status, param):
    args = {"model": model_name, "messages": [{"role": "user", "content": Q}], **kwargs}
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(**args)
    assert e.value.status_code == status
    err = e.value.body
    assert set(err) >= {"message", "type", "param", "code"} and err["param"] == param and err["message"]
    # and the server keeps serving
    ok = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}], temperature=0,
                                        extra_body={"rise": {"max_turns": 1}})
    assert ok.choices[0].message.content


def test_logprobs_of_the_final_answer(client, model_name):
    """`logprobs: true` gives the final turn's tokens with their log-probabilities, plain and streamed."""
    r = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}], temperature=0,
                                       logprobs=True, extra_body={"rise": {"max_turns": 2}})
    content = r.choices[0].logprobs.content
    assert content and "".join(t.token for t in content) == r.choices[0].message.content
    assert all(t.logprob <= 0 and t.top_logprobs == [] and bytes(t.bytes).decode() == t.token for t in content)
    stream = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}], temperature=0,
                                            logprobs=True, stream=True, extra_body={"rise": {"max_turns": 2}})
    streamed = [c.choices[0].logprobs.content for c in stream if c.choices and c.choices[0].logprobs]
    assert len(streamed) == 1 and [t.token for t in streamed[0]] == [t.token for t in content]
    plain = client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": Q}], temperature=0,
                                           extra_body={"rise": {"max_turns": 1}})
    assert plain.choices[0].logprobs is None
