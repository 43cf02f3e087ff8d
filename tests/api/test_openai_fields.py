"""Every field of OpenAI's chat request, in-process with a scripted engine (issue 18): neutral values
accepted, other values of what rise-serve does not offer a 400 naming the field, strict JSON types
on both APIs, `reasoning_effort` as turns, and the turns as `reasoning` and `reasoning_content`."""

import json
import logging

import httpx
import pytest

from app.api.main import create_app
from app.config import Settings
from tests.fakes import FakeEngine, scripted

Q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"
ANSWERS = ["39", "40", "40", "41", "40", "40", "40", "40", "40", "40"]
BASE = {"model": "fake", "messages": [{"role": "user", "content": Q}], "temperature": 0}

# each field at a value that asks for nothing: what front-ends send on every call
NEUTRAL = {
    "frequency_penalty": 0, "presence_penalty": 0.0, "logprobs": False, "top_logprobs": 0, "logit_bias": {},
    "response_format": {"type": "text"}, "tools": [], "tool_choice": "none", "parallel_tool_calls": True,
    "functions": [], "function_call": "none", "store": False, "metadata": {"app": "demo"}, "service_tier": "auto",
    "modalities": ["text"], "user": "user-1", "prediction": None, "audio": None, "web_search_options": None,
    "moderation": None, "verbosity": "medium", "safety_identifier": "u-hash", "prompt_cache_key": "k1",
    "prompt_cache_retention": "24h", "prompt_cache_options": {"mode": "implicit"}, "seed": None, "stop": None,
    "n": 1, "reasoning_effort": None, "stream": False, "stream_options": None, "top_p": 1,
}
# field -> a value asking for a feature rise-serve does not offer
REFUSED = {
    "frequency_penalty": 0.5, "presence_penalty": -1, "top_logprobs": 3,
    "logit_bias": {"50256": -100}, "response_format": {"type": "json_object"},
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "tool_choice": "required",
    "functions": [{"name": "f"}], "function_call": {"name": "f"}, "modalities": ["text", "audio"],
    "audio": {"voice": "alloy", "format": "wav"}, "prediction": {"type": "content", "content": "x"},
    "web_search_options": {}, "moderation": {"model": "omni"}, "verbosity": "low", "service_tier": "flex",
}  # `store: true` is honoured, or a 400 with traces off: tests/api/test_store_switch.py


async def post(body: dict, settings: Settings | None = None, engine: FakeEngine | None = None,
               path: str = "/v1/chat/completions") -> httpx.Response:
    app = create_app(settings or Settings(), engine=engine or FakeEngine(scripted(ANSWERS)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.post(path, content=json.dumps(body), headers={"content-type": "application/json"})


def trace(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    return r.json()["rise"]["choices"][0]


def final_text(t: dict) -> str:
    return t["turns"][t["final_turn"] - 1]["text"]


async def test_every_neutral_value_at_once_is_accepted():
    r = await post({**BASE, **NEUTRAL, "rise": {"max_turns": 2}})
    t = trace(r)
    assert len(t["turns"]) == 2 and r.json()["choices"][0]["message"]["content"] == final_text(t)


@pytest.mark.parametrize("field", sorted(NEUTRAL))
async def test_each_neutral_value_alone_is_accepted(field):
    assert (await post({**BASE, field: NEUTRAL[field], "rise": {"max_turns": 1}})).status_code == 200


@pytest.mark.parametrize("field", sorted(REFUSED))
async def test_a_feature_not_offered_is_a_400_naming_the_field(field):
    r = await post({**BASE, field: REFUSED[field]})
    err = r.json()["error"]
    assert r.status_code == 400 and err["param"] == field and err["code"] == "unsupported_parameter", r.text
    assert f"'{field}' is unsupported" in err["message"]


async def test_logprobs_without_engine_logprobs_are_null_and_top_alternatives_refused():
    r = await post({**BASE, "logprobs": True, "rise": {"max_turns": 1}})  # the fake engine gives none
    assert r.status_code == 200 and r.json()["choices"][0]["logprobs"] == {"content": None, "refusal": None}
    err = (await post({**BASE, "logprobs": True, "top_logprobs": 2})).json()["error"]
    assert err["param"] == "top_logprobs" and "not offered" in err["message"]


async def test_tool_choice_auto_without_tools_is_neutral_but_not_with_tools():
    assert (await post({**BASE, "tool_choice": "auto", "rise": {"max_turns": 1}})).status_code == 200
    r = await post({**BASE, "tool_choice": "auto", "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"


@pytest.mark.parametrize("extra,param", [
    ({"beam_width": 4}, "beam_width"), ({"top_k": 5}, "top_k"), ({"rise": {"beam": 3}}, "rise.beam"),
    ({"stream_options": {"include_usage": True, "chunk_size": 4}}, "stream_options.chunk_size"),
])
async def test_unknown_fields_stay_a_400(extra, param):
    r = await post({**BASE, **extra})
    assert r.status_code == 400 and r.json()["error"]["param"] == param
    assert "not supported" in r.json()["error"]["message"]


@pytest.mark.parametrize("messages,accepted", [
    ([{"role": "assistant", "content": None, "tool_calls": [], "refusal": None, "audio": None,
       "function_call": None}], True),
    ([{"role": "developer", "content": [{"type": "text", "text": "Be brief."}], "name": "ops"}], True),
    ([{"role": "assistant", "content": "x", "tool_calls": [{"id": "c1", "type": "function"}]}], False),
    ([{"role": "tool", "content": "42", "tool_call_id": "c1"}], False),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}], False),
    ([{"role": "system", "content": None}], False),
])
async def test_message_fields_at_neutral_values(messages, accepted):
    r = await post({**BASE, "messages": [*messages, {"role": "user", "content": Q}], "rise": {"max_turns": 1}})
    assert (r.status_code == 200) is accepted, r.text
    if not accepted:
        err = r.json()["error"]
        assert r.status_code == 400 and err["param"].startswith("messages.0"), err
        assert "unsupported" in err["message"] or "needs content" in err["message"]


@pytest.mark.parametrize("change,param", [
    ({"max_tokens": "5"}, "max_tokens"), ({"temperature": "0.5"}, "temperature"), ({"n": "2"}, "n"),
    ({"seed": 1.5}, "seed"), ({"stream": 1}, "stream"), ({"stream": "true"}, "stream"), ({"logprobs": 0}, "logprobs"),
    ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"rise": {"max_turns": "2"}}, "rise.max_turns"), ({"rise": {"samples_per_turn": True}}, "rise.samples_per_turn"),
    ({"rise": {"timeout": "30"}}, "rise.timeout"), ({"frequency_penalty": "0"}, "frequency_penalty"),
])
async def test_chat_types_are_strict(change, param):
    r = await post({**BASE, **change})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


@pytest.mark.parametrize("change,param", [
    ({"max_turns": "5"}, "max_turns"), ({"temperature": "0"}, "temperature"), ({"stream": 1}, "stream"),
    ({"samples_per_turn": True}, "samples_per_turn"), ({"seed": "1"}, "seed"), ({"timeout": "3"}, "timeout"),
    ({"max_tokens": 60.0}, "max_tokens"), ({"stream": "false"}, "stream"),
])
async def test_refine_types_are_strict(change, param):
    r = await post({"question": Q, **change}, path="/v1/refine")
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


async def test_json_integers_are_numbers_for_float_fields():
    r = await post({"question": Q, "max_turns": 1, "temperature": 1, "top_p": 1, "timeout": 30}, path="/v1/refine")
    assert r.status_code == 200, r.text
    assert (await post({**BASE, "temperature": 1, "top_p": 1, "rise": {"max_turns": 1, "timeout": 30}})).status_code == 200


@pytest.mark.parametrize("effort,turns", [("none", 1), ("minimal", 5), ("low", 3), ("medium", 5), ("high", 5),
                                          ("xhigh", 8), ("max", 10)])
async def test_reasoning_effort_sets_the_turns(effort, turns):
    """The scripted answers (39, 40, 40, 41, 40, ...): only `low` (agree) stops early, at turn 3."""
    assert len(trace(await post({**BASE, "reasoning_effort": effort}))["turns"]) == turns


@pytest.mark.parametrize("effort,turns,reason", [("minimal", 3, "settled"), ("low", 2, "agreed"),
                                                 ("medium", 3, "settled"), ("high", 5, "max_turns")])
async def test_reasoning_effort_sets_early_stopping(effort, turns, reason):
    """One answer every turn: each level's rule stops where it says (the fake engine gives no
    log-probs, so `confident` acts as `settled`)."""
    t = trace(await post({**BASE, "reasoning_effort": effort}, engine=FakeEngine(scripted(["7"]))))
    assert (len(t["turns"]), t["stop_reason"]) == (turns, reason)


async def test_reasoning_effort_is_capped_configurable_and_yields_to_rise_max_turns():
    capped = Settings(max_turns_cap=4)
    assert len(trace(await post({**BASE, "reasoning_effort": "xhigh"}, capped))["turns"]) == 4
    custom = Settings(reasoning_effort_levels={"low": 3, "high": {"max_turns": 6}})
    assert len(trace(await post({**BASE, "reasoning_effort": "low"}, custom))["turns"]) == 3
    assert len(trace(await post({**BASE, "reasoning_effort": "high"}, custom))["turns"]) == 6
    assert len(trace(await post({**BASE, "reasoning_effort": "none"}, custom))["turns"]) == 1  # kept default
    assert len(trace(await post({**BASE, "reasoning_effort": "high", "rise": {"max_turns": 2}}))["turns"]) == 2
    r = await post({**BASE, "reasoning_effort": "extreme"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "reasoning_effort"


def test_effort_levels_from_the_environment(monkeypatch):
    monkeypatch.setenv("RISE_REASONING_EFFORT_LEVELS", '{"none": 2, "max": {"max_turns": 40}}')
    s = Settings()
    assert s.effort("none").max_turns == 2 and s.effort("max").max_turns == 10
    assert (s.effort("low").max_turns, s.effort("low").early_stop) == (5, "agree")  # kept default
    monkeypatch.setenv("RISE_REASONING_EFFORT_LEVELS", '{"huge": 3}')
    with pytest.raises(ValueError):
        Settings()


async def test_non_streamed_message_carries_the_turns_in_both_reasoning_fields():
    r = await post({**BASE, "rise": {"max_turns": 3}})
    msg = r.json()["choices"][0]["message"]
    expected = ("[turn 1]\nSome steps. The answer is 39.\n[answer: 39 (unchecked)]\n"
                "[turn 2]\nSome steps. The answer is 40.\n[answer: 40 (unchecked)]\n"
                "[turn 3]\nSome steps. The answer is 40.\n[answer: 40 (unchecked)]\n")
    assert msg["reasoning"] == msg["reasoning_content"] == expected
    assert msg["content"] == final_text(trace(r)) == "Some steps. The answer is 40."


def sse_chunks(r: httpx.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


async def test_streamed_turns_go_out_in_both_fields_of_one_delta():
    r = await post({**BASE, "stream": True, "rise": {"max_turns": 3}})
    deltas = [c["choices"][0]["delta"] for c in sse_chunks(r) if c.get("choices")]
    thinking = [d for d in deltas if "reasoning" in d or "reasoning_content" in d]
    assert thinking and all(d["reasoning"] == d["reasoning_content"] and "content" not in d for d in thinking)
    whole = (await post({**BASE, "rise": {"max_turns": 3}})).json()["choices"][0]["message"]["reasoning"]
    assert "".join(d["reasoning"] for d in thinking) == whole
    assert "".join(d.get("content") or "" for d in deltas) == "Some steps. The answer is 40."


@pytest.mark.parametrize("setting,absent", [("reasoning", "reasoning_content"), ("reasoning_content", "reasoning")])
async def test_a_setting_picks_one_reasoning_field(setting, absent):
    settings = Settings(reasoning_field=setting)
    msg = (await post({**BASE, "rise": {"max_turns": 1}}, settings)).json()["choices"][0]["message"]
    assert msg[setting].startswith("[turn 1]") and absent not in msg
    r = await post({**BASE, "stream": True, "rise": {"max_turns": 1}}, settings)
    deltas = [c["choices"][0]["delta"] for c in sse_chunks(r) if c.get("choices")]
    assert any(setting in d for d in deltas) and not any(absent in d for d in deltas)


async def test_the_user_is_written_to_the_request_log(caplog):
    with caplog.at_level(logging.INFO, logger="rise.api"):
        assert (await post({**BASE, "user": "alice-7", "rise": {"max_turns": 1}})).status_code == 200
    assert any(getattr(rec, "fields", {}).get("user") == "alice-7" for rec in caplog.records)


async def test_null_n_and_stream_mean_their_defaults():
    r = await post({**BASE, "n": None, "stream": None, "max_completion_tokens": 50, "rise": {"max_turns": 1}})
    assert len(r.json()["choices"]) == 1


@pytest.mark.parametrize("body", [
    {**BASE, "messages": [{"role": "user", "content": "what is 2+2 \ud800"}]},
    {**BASE, "messages": [{"role": "user", "content": [{"type": "text", "text": "x \udfff"}]}]},
    {**BASE, "messages": [{"role": "system", "content": "\ud800"}, {"role": "user", "content": Q}]},
    {**BASE, "model": "fake\ud800"},
    {**BASE, "stop": ["\ud800"]},
    {**BASE, "user": "alice\n2026 ERROR forged line"},
    {**BASE, "safety_identifier": "x\r\nTraceback (most recent call last):"},
    {**BASE, "messages": [{"role": "user", "content": Q, "name": "a\nb"}]},
    {**BASE, "stream_options": {"include_usage": True}},
    {**BASE, "messages": [{"role": "assistant", "content": "no", "refusal": "I refuse"}, {"role": "user", "content": Q}]},
])
async def test_text_that_cannot_be_served_or_logged_is_a_400(body):
    """Lone surrogates (unencodable), line breaks in one-line identifiers (they reach the log),
    stream_options without a stream and a refusal's text: 400s in OpenAI's shape, never a 500."""
    r = await post(body)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", r.text


async def test_native_api_refuses_lone_surrogates_too():
    r = await post({"question": "2+2 \ud800", "max_turns": 1}, path="/v1/refine")
    assert r.status_code == 400 and r.json()["error"]["param"] == "question"
    r = await post({"question": Q, "model": "x\ud800", "max_turns": 1}, path="/v1/refine")
    assert r.status_code == 400


async def test_an_effort_rule_that_cannot_apply_is_dropped_not_blamed_on_the_client():
    t = trace(await post({**BASE, "reasoning_effort": "low", "rise": {"max_turns": 1}}))
    assert len(t["turns"]) == 1
    t = trace(await post({**BASE, "reasoning_effort": "low"}, Settings(max_turns_cap=1)))
    assert len(t["turns"]) == 1
    with pytest.raises(ValueError, match="agree"):
        Settings(reasoning_effort_levels={"low": {"max_turns": 1, "early_stop": "agree"}})


async def test_null_rise_fields_keep_the_effort_level():
    t = trace(await post({**BASE, "reasoning_effort": "xhigh", "rise": {"max_turns": None}}))
    assert len(t["turns"]) == 8


@pytest.mark.parametrize("rise,param", [({"max_turns": 11}, "rise.max_turns"), ({"max_total_tokens": 0}, "rise.max_total_tokens"),
                                        ({"early_stop": "agree", "agree_turns": 6, "max_turns": 5}, "rise.agree_turns"),
                                        ({"samples_per_turn": 9}, "rise.samples_per_turn")])
async def test_chat_errors_name_rise_fields_with_their_path(rise, param):
    r = await post({**BASE, "rise": rise})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def _told(trace: dict) -> str:
    """The reasoning a choice's trace tells: each turn's chosen sample, then its answer and verdict."""
    verdict = {True: "correct", False: "incorrect", None: "unchecked"}
    return "".join(f"[turn {t['turn']}]\n{t['samples'][t['chosen_sample']]['text']}\n"
                   f"[answer: {'none' if t['answer'] is None else t['answer']} ({verdict[t['correct']]})]\n"
                   for t in trace["turns"])


def test_with_several_samples_the_stream_tells_the_chosen_samples_story(server, model_name):
    """Issue 26 item 9, on the real model: the stream sent sample 0's text, then the chosen sample's
    answer and verdict. Temperature 2 makes the samples differ; a seed where a sample other than the
    first is chosen is looked for (the test fails if none is found)."""
    q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
    for seed in range(2, 12):
        body = {"model": model_name, "messages": [{"role": "user", "content": q}], "temperature": 2.0, "seed": seed,
                "stream": True, "rise": {"max_turns": 2, "samples_per_turn": 4, "reference": "31"}}
        r = httpx.post(f"{server}/v1/chat/completions", json=body, timeout=120)
        chunks = [json.loads(line[6:]) for line in r.text.splitlines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
        [trace] = [c["rise"] for c in chunks if "rise" in c]
        if any(t["chosen_sample"] != 0 for t in trace["turns"]):
            break
    else:
        pytest.fail("no seed chose a sample other than the first")
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    streamed = "".join(d.get("reasoning", "") for d in deltas)
    assert streamed == _told(trace), (streamed, _told(trace))
    content = "".join(d.get("content") or "" for d in deltas)
    assert content == trace["turns"][trace["final_turn"] - 1]["text"]
