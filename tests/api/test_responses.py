"""The OpenAI Responses API (`/v1/responses`, issue 30) through the official `openai` client against a
real `rise serve` with traces on (SQLite) and two API keys: plain and streamed (the documented event
order, `sequence_number`s from 0), `reasoning.effort`, RISE options in `extra_body`, a turn per
reasoning item, usage and status, unsupported fields as a 400 naming them, and stored responses
(`store`, GET, DELETE, `previous_response_id`, per-key privacy). Traces off: `store: true` and
`previous_response_id` are 400s.

    .venv/bin/python -m pytest -q tests/api/test_responses.py
"""

import asyncio
import itertools
import json
import time

import httpx
import openai
import pytest

from tests.servers import start_server, stop_server, wait_for

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
ANSWER = "The answer is 31."
KEYS = ("k-resp-alpha-0123456789", "k-resp-beta-9876543210")
TWO = {"rise": {"max_turns": 2}}


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    db = tmp_path_factory.mktemp("responses") / "traces.db"
    proc, url, _ = start_server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_API_KEYS": ",".join(KEYS)})
    yield url
    stop_server(proc)


@pytest.fixture(scope="module")
def client(traced):
    return openai.OpenAI(base_url=f"{traced}/v1", api_key=KEYS[0], max_retries=0)


@pytest.fixture(scope="module")
def other(traced):
    return openai.OpenAI(base_url=f"{traced}/v1", api_key=KEYS[1], max_retries=0)


def create(client, **kw):
    return client.responses.create(model="rise-synth", input=kw.pop("input", Q), temperature=0, **kw)


def test_a_plain_response_has_a_reasoning_item_per_turn_then_the_message(client):
    r = create(client, extra_body=TWO)
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "completed"
    assert r.incomplete_details is None and r.error is None and r.store is False
    assert [o.type for o in r.output] == ["reasoning", "reasoning", "message"]
    turns = r.model_extra["rise"]["turns"]
    assert [o.content[0].text for o in r.output[:2]] == [t["text"] for t in turns]
    assert [o.summary for o in r.output[:2]] == [[], []]  # no summary asked for
    assert r.output_text.endswith(ANSWER) and r.output[-1].role == "assistant"
    u = r.usage
    assert u.input_tokens == sum(t["prompt_tokens"] for t in turns)
    assert u.output_tokens == sum(t["completion_tokens"] for t in turns)
    final = next(t for t in turns if t["turn"] == r.model_extra["rise"]["final_turn"])
    assert u.output_tokens_details.reasoning_tokens == u.output_tokens - final["completion_tokens"] > 0
    assert u.total_tokens == u.input_tokens + u.output_tokens
    with pytest.raises(openai.NotFoundError):  # store left out: kept nowhere, as chat's
        client.responses.retrieve(r.id)


def _shape(kinds: list[str]) -> list[str]:
    """The event types with each run of deltas shown once."""
    return [k for k, _ in itertools.groupby(kinds)]


TURN = ["response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.content_part.done", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done", "response.output_item.done"]
MESSAGE = ["response.output_item.added", "response.content_part.added", "response.output_text.delta",
           "response.output_text.done", "response.content_part.done", "response.output_item.done"]


def test_a_stream_sends_the_documented_events_in_order_with_sequence_numbers(client):
    events = list(create(client, stream=True, reasoning={"summary": "auto"}, extra_body=TWO))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert _shape([e.type for e in events]) == ["response.created", "response.in_progress", *TURN, *TURN, *MESSAGE,
                                                "response.completed"]
    done = events[-1].response
    assert events[0].response.id == done.id and events[0].response.status == "in_progress"
    assert done.status == "completed"
    items = [e.item for e in events if e.type == "response.output_item.done"]
    assert [i.model_dump() for i in items] == [o.model_dump() for o in done.output]  # the stream tells the same story
    for i, item in enumerate(items[:2]):
        deltas = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta" and e.output_index == i)
        assert deltas == item.content[0].text and item.summary[0].text.startswith(f"Turn {i + 1}: answer ")
    assert done.output_text.endswith(ANSWER)
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == done.output_text


def test_the_clients_stream_helper_builds_the_final_response(client):
    with client.responses.stream(model="rise-synth", input=Q, temperature=0, extra_body=TWO) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == text and text.endswith(ANSWER) and len(final.output) == 3


async def test_reasoning_effort_sets_the_turns(traced):
    async with openai.AsyncOpenAI(base_url=f"{traced}/v1", api_key=KEYS[0], max_retries=0) as c:
        rs = await asyncio.gather(*[c.responses.create(model="rise-synth", input=Q, temperature=0,
                                                       reasoning={"effort": effort}) for effort in ("none", "low")])
    assert [len(r.model_extra["rise"]["turns"]) for r in rs] == [1, 2]  # low: stop once two turns agree
    assert [r.reasoning.effort for r in rs] == ["none", "low"]
    assert [[o.type for o in r.output] for r in rs] == [["reasoning", "message"], ["reasoning"] * 2 + ["message"]]


def test_rise_options_ride_in_extra_body_with_chats_validation(client):
    r = create(client, reasoning={"effort": "high"}, extra_body={"rise": {"reference": "31"}})
    trace = r.model_extra["rise"]
    assert trace["mode"] == "oracle" and trace["correct"] is True and len(trace["turns"]) == 1  # first correct turn
    with pytest.raises(openai.BadRequestError) as e:
        create(client, extra_body={"rise": {"max_turns": "3"}})
    assert e.value.body["param"] == "rise.max_turns"


def test_max_output_tokens_is_the_budget_and_an_exhausted_one_is_incomplete(client):
    r = create(client, max_output_tokens=40, extra_body={"rise": {"max_turns": 3}})
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens <= 40 and r.max_output_tokens == 40
    assert r.output[-1].type == "message" and r.output[-1].status == "incomplete"


def test_include_logprobs_gives_the_answers_token_logprobs(client):
    r = create(client, include=["message.output_text.logprobs"], extra_body={"rise": {"max_turns": 1}})
    logprobs = r.output[-1].content[0].logprobs
    assert "".join(lp.token for lp in logprobs) == r.output_text and all(lp.logprob <= 0 for lp in logprobs)


@pytest.mark.parametrize("kw,field", [
    ({"tools": [{"type": "web_search"}]}, "tools"),
    ({"tools": [{"type": "function", "name": "f", "parameters": {}}]}, "tools"),
    ({"include": ["reasoning.encrypted_content"]}, "include"),
    ({"truncation": "auto"}, "truncation"),
    ({"text": {"format": {"type": "json_object"}}}, "text"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
     "input.0.content"),
    ({"extra_body": {"seed": 7}}, "seed"),
])
def test_an_unsupported_field_is_a_400_naming_it(client, kw, field):
    with pytest.raises(openai.BadRequestError) as e:
        create(client, **kw)
    assert e.value.body["param"] == field, e.value.body


def test_neutral_values_are_accepted(client):
    r = create(client, tools=[], tool_choice="auto", parallel_tool_calls=False, truncation="disabled", include=[],
               text={"format": {"type": "text"}}, store=False, metadata={"app": "tests"}, user="u-1",
               service_tier="auto", top_logprobs=0, extra_body=TWO)
    assert r.status == "completed" and r.metadata == {"app": "tests"} and r.parallel_tool_calls is False


def test_a_stored_response_reads_back_and_deletes_for_its_key_only(client, other, traced):
    r = create(client, store=True, metadata={"k": "v"}, reasoning={"summary": "concise"}, extra_body=TWO)
    got = client.responses.retrieve(r.id)
    assert got.model_dump() == r.model_dump() and got.store is True and got.metadata == {"k": "v"}
    trace = httpx.get(f"{traced}/v1/refinements/{r.id}", headers={"Authorization": f"Bearer {KEYS[0]}"}).json()
    assert trace["route"] == "/v1/responses" and len(trace["turns"]) == 2  # one id: the response's is its trace's
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(r.id)
    with pytest.raises(openai.BadRequestError) as e:
        create(other, input="And then?", previous_response_id=r.id)
    assert e.value.body["param"] == "previous_response_id"
    client.responses.delete(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(r.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(r.id)


def test_previous_response_id_continues_the_conversation_without_its_instructions(client, traced):
    first = create(client, store=True, instructions="Answer briefly.", extra_body={"rise": {"max_turns": 1}})
    follow = "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?"
    second = create(client, input=follow, store=True, previous_response_id=first.id,
                    extra_body={"rise": {"max_turns": 1}})
    assert second.previous_response_id == first.id and second.instructions is None
    trace = httpx.get(f"{traced}/v1/refinements/{second.id}", headers={"Authorization": f"Bearer {KEYS[0]}"}).json()
    assert trace["question"] == follow
    assert trace["history"] == [{"role": "user", "content": Q}, {"role": "assistant", "content": first.output_text}]
    alone = create(client, input=follow, extra_body={"rise": {"max_turns": 1}})
    assert second.usage.input_tokens > alone.usage.input_tokens


def test_a_stream_that_fails_ends_with_response_failed(client):
    events = list(create(client, stream=True, extra_body={"rise": {"timeout": 0.001}}))
    assert [e.type for e in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "timeout" and events[-1].sequence_number == 2


def _cancelled(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
               if ln.startswith("rise_requests_cancelled_total{") and 'route="/v1/responses"' in ln)


def test_a_client_that_leaves_cancels_the_refinement(traced):
    before = _cancelled(traced)
    body = {"model": "rise-synth", "input": Q, "stream": True, "rise": {"max_turns": 5}}
    with httpx.stream("POST", f"{traced}/v1/responses", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {KEYS[0]}"}) as r:
        for line in r.iter_lines():
            if "response.reasoning_text.delta" in line:
                break  # the first turn is running: leave
    assert wait_for(lambda: _cancelled(traced) >= before + 1, timeout=30)


@pytest.mark.parametrize("path,body,delete", [
    ("/v1/responses", {"model": "rise-synth", "input": Q}, "/v1/responses/{}"),
    ("/v1/chat/completions", {"model": "rise-synth", "messages": [{"role": "user", "content": Q}]},
     "/v1/refinements/{}"),
], ids=["responses", "chat"])
def test_a_delete_while_the_stream_runs_wins_over_its_write(traced, path, body, delete):
    """Hostile review: a stream tells its id at once (`response.created`, chat's first chunk); a
    DELETE then got a definitive 404, and the response was stored when the stream ended."""
    auth = {"Authorization": f"Bearer {KEYS[0]}"}
    body = {**body, "stream": True, "store": True, "rise": {"max_turns": 3}}
    with httpx.stream("POST", f"{traced}{path}", json=body, timeout=60, headers=auth) as r:
        lines = r.iter_lines()
        first = next(ln for ln in lines if ln.startswith("data: "))
        rid = json.loads(first[6:]).get("response", {}).get("id") or json.loads(first[6:])["id"]
        gone = httpx.delete(f"{traced}{delete.format(rid)}", headers=auth, timeout=60)
        rest = list(lines)
    assert gone.status_code in (200, 503), gone.text  # deleted, or marked for deletion (Retry-After)
    assert any("[DONE]" in ln or "response.completed" in ln for ln in rest)
    assert wait_for(lambda: httpx.get(f"{traced}/v1/refinements/{rid}", headers=auth).status_code == 404, timeout=10)
    time.sleep(0.5)
    assert httpx.get(f"{traced}/v1/refinements/{rid}", headers=auth).status_code == 404, "stored after its DELETE"
    again = httpx.delete(f"{traced}{delete.format(rid)}", headers=auth)
    assert again.status_code in (200, 404), again.text


# ---- traces off (the session's plain server) -------------------------------------------------------

def test_with_traces_off_store_and_previous_response_id_are_400s(server):
    c = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    for kw, field in (({"store": True}, "store"),
                      ({"previous_response_id": "resp_" + "0" * 32}, "previous_response_id")):
        with pytest.raises(openai.BadRequestError) as e:
            create(c, **kw, extra_body={"rise": {"max_turns": 1}})
        assert e.value.body["param"] == field and "RISE_TRACES_URL" in e.value.body["message"]
    assert create(c, store=False, extra_body={"rise": {"max_turns": 1}}).status == "completed"
    assert httpx.get(f"{server}/v1/responses/resp_{'0' * 32}").status_code == 409
