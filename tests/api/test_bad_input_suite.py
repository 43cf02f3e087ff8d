"""Hundreds of malformed requests against running servers: each gets a 4xx naming the problem (never
a traceback), and the server answers a normal request right after. Every field of /v1/refine and the
chat API (with wrong types, out-of-range and huge values, and wrong combinations: `early_stop` with
an oracle, `agree_turns` > `max_turns`, a budget smaller than one turn), raw bodies that are not
JSON, and the stored-refinement routes on a server with traces on: malformed and unknown ids,
feedback that is oversized, not JSON, of wrong types or out of range, repeated feedback (the last
one wins), `limit` and `before` abuse; there the normal request's trace is read back too.

    .venv/bin/python -m pytest -q tests/api/test_bad_input_suite.py
"""

import json
from urllib.parse import quote, unquote

import httpx
import pytest

Q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"
OK = {"question": Q, "max_turns": 1}

FIELD_CASES = {
    "question": [5, 5.5, True, None, [], {}, "", "   ", "a\x00b", "bell\x07", "x" * 20001, ["Q"]],
    "reference": [5, [], "", "a\x01b", {"a": 1}],
    "max_turns": [-1, 0, 11, 1e9, "three", 2**70, 3.5, [3]],
    "samples_per_turn": [0, 9, -3, "x", 1.5],
    "window": ["everything", 3, None, ""],
    "aggregation": ["mean", 1, "loudest", None],
    "early_stop": ["sometimes", 1, "", True],
    "agree_turns": [1, 0, "2", 2.5, True],
    "max_total_tokens": [0, -5, "100", 1.5, False],
    "tie_break": ["middle", False],
    "temperature": [-0.1, 2.1, "hot", 1e309, [1]],
    "top_p": [0, 1.5, -1, "p"],
    "max_tokens": [0, 513, -1, 1e20, "ten"],
    "seed": [-1, 2**63, "s", 1.5],
    "stop": ["x", [""], ["a"] * 5, [1], {"s": 1}],
    "stream": ["yes", 2, [True]],
    "task": ["chess", 7],
    "timeout": [0, -1, 1e9, "soon"],
    "model": ["other-model", 5, "a\x02"],
    "beam_width": [4], "logprobs": [True], "__proto__": [{}], "n": [2],
    "verifier": ["numeric", 5, {}, {"name": ""}, {"name": "nope"}, {"name": "a\nb"}, {"name": "numeric"},
                 {"name": "numeric", "target": "31"}, {"name": "numeric", "target": 1, "tolerance": -1},
                 {"name": "regex", "pattern": "("}, {"name": "regex", "pattern": "x" * 501},
                 {"name": "regex", "pattern": "(a{1000}){1000}"}, {"name": "json_schema", "schema": {"type": 5}},
                 {"name": "json_schema", "schema": {"$ref": "http://169.254.169.254/latest"}},
                 {"name": "contains", "value": "x", "url": "http://example.com"},
                 # each pattern under its own cap, together over the request's budget (cost or count)
                 {"name": "json_schema", "schema": {"anyOf": [{"pattern": f"(?:a{{99}}){{99}}N{i}"} for i in range(60)]}},
                 {"name": "json_schema", "schema": {"anyOf": [{"pattern": f"x{i}"} for i in range(300)]}},
                 {"name": "regex", "pattern": "(?:\\X){9999}"}, {"name": "regex", "pattern": "(){99999}"}],
    "feedback": ["Try again.", "", "{question}" + "x" * 2000, 5, "a\x00 {question}", ["{question}"]],
}
BOTH = [({"reference": "31", "verifier": {"name": "contains", "value": "3"}}, "verifier"),
        ({"reference": "40", "early_stop": "agree", "max_turns": 3}, "early_stop"),
        ({"verifier": {"name": "contains", "value": "4"}, "early_stop": "settled"}, "early_stop"),
        ({"reference": "40", "early_stop": "confident"}, "early_stop"),
        ({"early_stop": "agree", "agree_turns": 3, "max_turns": 2}, "agree_turns"),
        ({"early_stop": "agree", "agree_turns": 2**70, "max_turns": 5}, "agree_turns"),
        ({"samples_per_turn": 4, "max_total_tokens": 3}, "max_total_tokens"),
        ({"max_total_tokens": 2**70 * 1.5}, "max_total_tokens"),
        ({"question": "Sam has 3 apples. " * 1000, "stream": True}, "question")]  # too long for the context
RAW_CASES = [
    b'{"question": "x"', b"{", b"not json", b"", b'{"question": "x",}', b"{'question': 'x'}",
    b'{"question": NaN}', b'{"question": "x", "temperature": NaN}', b'{"question": "x", "temperature": Infinity}',
    b'{"question": "x", "temperature": -Infinity}', b'{"question": "\xff\xfe"}', b"\xff\xfe\xfd",
    b"[" * 100_000 + b"]" * 100_000, b'{"question": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b"[]", b'"question"', b"1", b"null", b"true", b'{"question": "x", "max_turns": 1e400}',
    b'{"question": "x", "max_turns": 99999999999999999999999999999}', b'{"question": "x"} trailing',
    b'{"question": "\\ud800"}',
]
CHAT_CASES = [
    {"model": "m"}, {"messages": []}, {"messages": "hi"}, {"messages": [{"role": "user"}]},
    {"messages": [{"role": "robot", "content": "x"}]}, {"messages": [{"role": "assistant", "content": "x"}]},
    {"messages": [{"role": "user", "content": 5}]}, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    {"messages": [{"role": "user", "content": "a\x00"}]}, {"n": 0}, {"n": 9}, {"max_tokens": 0},
    {"max_tokens": 100, "max_completion_tokens": 100}, {"temperature": 3}, {"stop": [""]},
    {"stream_options": {"include_usage": "y"}}, {"tools": [{"type": "function", "function": {"name": "f"}}]}, {"logit_bias": {"50256": -100}}, {"rise": {"max_turns": 0}},
    {"rise": {"samples_per_turn": 100}}, {"rise": "fast"}, {"user": "u" * 300}, {"model": 5},
    {"rise": {"early_stop": "agree", "agree_turns": 6, "max_turns": 5}}, {"rise": {"max_total_tokens": 0}},
    {"rise": {"early_stop": "soon"}}, {"rise": {"aggregation": "confidence", "max_total_tokens": "9"}},
    {"reasoning_effort": "extreme"}, {"reasoning_effort": 3}, {"logprobs": True, "top_logprobs": 3}, {"logprobs": "yes"},
    {"rise": {"verifier": {"name": "nope"}}}, {"rise": {"verifier": {"name": "regex", "pattern": "(("}}},
    {"rise": {"reference": "31", "verifier": {"name": "numeric", "target": 31}}}, {"rise": {"feedback": "Again."}},
]

CHAT_NAMED = [  # the chat API's newer fields and combinations: the 400 names the field
    ({"rise": {"early_stop": "agree", "reference": "40", "max_turns": 3}}, "rise.early_stop"),
    ({"rise": {"early_stop": "agree", "agree_turns": 2**70}}, "rise.agree_turns"),
    ({"rise": {"samples_per_turn": 2, "max_total_tokens": 1}}, "max_total_tokens"),
    ({"reasoning_effort": ["low"]}, "reasoning_effort"), ({"reasoning_effort": ""}, "reasoning_effort"),
    ({"reasoning_effort": "LOW"}, "reasoning_effort"), ({"presence_penalty": 0.5}, "presence_penalty"),
    ({"frequency_penalty": 9}, "frequency_penalty"), ({"top_logprobs": 21}, "top_logprobs"),
    ({"response_format": {"type": "json_object"}}, "response_format"), ({"verbosity": "loud"}, "verbosity"),
    ({"service_tier": "x"}, "service_tier"), ({"store": "yes"}, "store"),
    ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ({"prompt_cache_retention": "forever"}, "prompt_cache_retention"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"), ({"max_completion_tokens": 513}, "max_completion_tokens"),
    ({"messages": [{"role": "user", "content": "Sam has 3 apples. " * 1000}], "stream": True}, "messages"),
]


PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")  # pydantic's wording around a validator's sentence


def own_words(err: dict) -> None:
    """A 4xx message is the project's own sentence: none of its parts carries pydantic's prefixes."""
    assert not any(p in err["message"] for p in PYDANTIC_PREFIXES), err


def cases():
    for field, values in FIELD_CASES.items():
        for v in values:
            yield pytest.param("/v1/refine", {**OK, field: v}, field, id=f"{field}={str(v)[:20]}")
    for i, (change, field) in enumerate(BOTH):
        yield pytest.param("/v1/refine", {**OK, **change}, field, id=f"both{i}")
    for i, raw in enumerate(RAW_CASES):
        yield pytest.param("/v1/refine", raw, None, id=f"raw{i}")
    for i, change in enumerate(CHAT_CASES):
        yield pytest.param("/v1/chat/completions", change, "chat", id=f"chat{i}")
    for i, (change, field) in enumerate(CHAT_NAMED):
        yield pytest.param("/v1/chat/completions", change, field, id=f"chat-{field}{i}")


ALL = list(cases())


def test_the_suite_has_over_a_hundred_cases():
    assert len(ALL) > 100


@pytest.mark.parametrize("path,body,field", ALL)
def test_malformed_request_gets_a_4xx_naming_the_problem(server, model_name, path, body, field):
    if path.endswith("completions"):
        body = {"model": model_name, "messages": [{"role": "user", "content": Q}], **body}
    if isinstance(body, bytes):
        r = httpx.post(f"{server}{path}", content=body, headers={"content-type": "application/json"}, timeout=60)
    else:
        r = httpx.post(f"{server}{path}", content=json.dumps(body).encode(),
                       headers={"content-type": "application/json"}, timeout=60)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["message"] and err["type"] and "Traceback" not in r.text and 'File "' not in r.text
    own_words(err)
    if field not in (None, "chat"):
        assert field in (err["param"] or "") or field in err["message"], err
    ok = httpx.post(f"{server}/v1/refine", json=OK, timeout=60)
    assert ok.status_code == 200


# ---- the stored-refinement routes (/v1/refinements), on a server with traces on ----------------

HEX = "0123456789abcdef" * 2
BAD_IDS = ["x", "rr-123", "rr-" + "g" * 32, "RR-" + HEX, "rr_" + HEX, HEX, "chatcmpl-" + HEX[:31], "rr-" + HEX + "0",
           "rr-" + HEX.upper(), "rr-" + HEX[:31] + "\n", "rr-" + "ü" * 32, "\x00", "a" * 5000, "' OR 1=1 --",
           "rr-%2e%2e", "rr-" + HEX + "?x=1"]
UNKNOWN_IDS = ["rr-" + "0" * 32, "chatcmpl-" + "f" * 32]
FEEDBACK_CASES = [  # (body, what the 4xx must name)
    ({"rating": 0}, "rating"), ({"rating": 2}, "rating"), ({"rating": -2}, "rating"), ({"rating": 2**70}, "rating"),
    ({"rating": "1"}, "rating"), ({"rating": 1.0}, "rating"), ({"rating": True}, "rating"), ({"rating": [1]}, "rating"),
    ({"rating": None}, "rating"), ({}, "rating"), ({"comment": "x" * 2001}, "comment"), ({"comment": 5}, "comment"),
    ({"comment": "a\x00b"}, "comment"), ({"comment": ["c"]}, "comment"), ({"reference": 31}, "reference"),
    ({"reference": ""}, "reference"), ({"reference": "a\x01b"}, "reference"),
    ({"reference": "(" * 9 + "1" + ")" * 9}, "reference"), ({"reference": "x" * 1001}, "reference"),
    ({"rating": 1, "score": 3}, "score"), ({"rating": 1, "id": "rr-" + HEX}, "id"),
]
FEEDBACK_RAW = [b"not json", b"{", b"", b"[]", b'"rating"', b"null", b"1", b'{"rating": NaN}', b'{"rating": 1} x',
                b"\xff\xfe", b'{"rating": 1,}', b"[" * 50_000 + b"]" * 50_000]
LIST_CASES = [("limit=0", "limit"), ("limit=-1", "limit"), ("limit=101", "limit"), ("limit=" + "9" * 40, "limit"),
              ("limit=abc", "limit"), ("limit=", "limit"), ("limit=1.5", "limit"), ("limit=%00", "limit"),
              ("before=x", "before"), ("before=", "before"), ("before=" + "a" * 5000, "before"),
              ("before=rr-" + "0" * 32, "before"), ("before=rr-" + HEX + "%00", "before")]


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    from tests.servers import start_server, stop_server

    db = tmp_path_factory.mktemp("bad-input-traces") / "traces.db"
    proc, url, _ = start_server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_TRACES_KEEP_REFERENCES": "true"})
    yield url
    stop_server(proc)


def still_serves(url: str) -> str:
    """A normal refinement is answered and its trace read back; returns its id."""
    r = httpx.post(f"{url}/v1/refine", json={**OK, "max_tokens": 24}, timeout=60)
    assert r.status_code == 200, r.text
    trace_id = r.json()["id"]
    assert httpx.get(f"{url}/v1/refinements/{trace_id}", timeout=30).status_code == 200
    return trace_id


def named_4xx(r: httpx.Response, status: int | tuple[int, ...], name: str | None) -> dict:
    assert r.status_code in ((status,) if isinstance(status, int) else status), (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err["message"] and err["type"] and "Traceback" not in r.text and 'File "' not in r.text
    own_words(err)
    if name is not None:
        assert name in (err["param"] or "") or name in err["message"], err
    return err


def id_cases():
    for method, suffix in (("GET", ""), ("DELETE", ""), ("POST", "/feedback")):
        for i, bad in enumerate(BAD_IDS + UNKNOWN_IDS):
            yield pytest.param(method, bad, suffix, id=f"{method}-{'unknown' if bad in UNKNOWN_IDS else 'bad'}{i}")


@pytest.mark.parametrize("method,trace_id,suffix", list(id_cases()))
def test_malformed_or_unknown_id_is_a_404(traced, method, trace_id, suffix):
    path = f"{traced}/v1/refinements/{quote(trace_id, safe='')}{suffix}"
    r = httpx.request(method, path, json={"rating": 1} if suffix else None, timeout=30)
    err = named_4xx(r, 404, None)
    if "/" not in unquote(trace_id):  # the route itself answered: it names the id, printable and short
        assert err["param"] == "id" and "no refinement with id" in err["message"] and len(err["message"]) < 200, err
    still_serves(traced)


@pytest.fixture
def one_trace(traced):
    """A trace of its own for each case, so that one case's feedback cannot hide another's."""
    return still_serves(traced)


@pytest.mark.parametrize("body,name", FEEDBACK_CASES, ids=[f"fb{i}" for i in range(len(FEEDBACK_CASES))])
def test_bad_feedback_is_a_400_naming_the_field(traced, one_trace, body, name):
    r = httpx.post(f"{traced}/v1/refinements/{one_trace}/feedback", json=body, timeout=30)
    named_4xx(r, 400, name)
    assert httpx.get(f"{traced}/v1/refinements/{one_trace}", timeout=30).json()["feedback"] is None  # nothing kept
    still_serves(traced)


@pytest.mark.parametrize("raw", FEEDBACK_RAW, ids=[f"raw{i}" for i in range(len(FEEDBACK_RAW))])
def test_feedback_that_is_not_a_json_object_is_a_400(traced, one_trace, raw):
    r = httpx.post(f"{traced}/v1/refinements/{one_trace}/feedback", content=raw,
                   headers={"content-type": "application/json"}, timeout=30)
    named_4xx(r, 400, None)
    assert httpx.get(f"{traced}/v1/refinements/{one_trace}", timeout=30).json()["feedback"] is None
    still_serves(traced)


def test_oversized_feedback_is_a_413_and_changes_nothing(traced, one_trace):
    big = json.dumps({"rating": 1, "comment": "x" * 2_000_000}).encode()
    r = httpx.post(f"{traced}/v1/refinements/{one_trace}/feedback", content=big,
                   headers={"content-type": "application/json"}, timeout=60)
    err = named_4xx(r, 413, None)
    assert "byte" in err["message"] or "large" in err["message"], err
    assert httpx.get(f"{traced}/v1/refinements/{one_trace}", timeout=30).json()["feedback"] is None
    still_serves(traced)


def test_repeated_feedback_the_last_one_wins(traced):
    trace_id = still_serves(traced)
    url = f"{traced}/v1/refinements/{trace_id}"
    assert httpx.post(f"{url}/feedback", json={"rating": 1, "comment": "first"}, timeout=30).status_code == 200
    assert httpx.post(f"{url}/feedback", json={"rating": -1, "reference": "987654"}, timeout=30).status_code == 200
    fb = httpx.get(url, timeout=30).json()["feedback"]
    assert (fb["rating"], fb["comment"], fb["reference_given"]) == (-1, None, True)  # the whole of the last one
    assert httpx.post(f"{url}/feedback", json={"comment": "third"}, timeout=30).status_code == 200
    fb = httpx.get(url, timeout=30).json()["feedback"]
    assert (fb["rating"], fb["comment"], fb["reference_given"]) == (None, "third", False)
    assert "987654" not in httpx.get(url, timeout=30).text.replace(trace_id, "")  # a reference is never shown
    still_serves(traced)


@pytest.mark.parametrize("query,name", LIST_CASES, ids=[q[:24] for q, _ in LIST_CASES])
def test_list_with_bad_limit_or_before_is_a_400_naming_it(traced, query, name):
    r = httpx.get(f"{traced}/v1/refinements?{query}", timeout=30)
    named_4xx(r, 400, name)
    still_serves(traced)


def test_an_effort_level_beside_an_oracle_is_no_wrong_combination(server, model_name):
    """`early_stop` with an oracle is refused only when the client asked for both: a reasoning_effort
    level's rule gives way to the oracle (the loop stops at the first correct turn)."""
    r = httpx.post(f"{server}/v1/chat/completions", timeout=60, json={
        "model": model_name, "messages": [{"role": "user", "content": Q}], "reasoning_effort": "low",
        "rise": {"reference": "40", "max_turns": 2}})
    assert r.status_code == 200, r.text


# ---- every 4xx reads as the project's own sentence: a validator's words, without pydantic's prefix --

OWN_WORDS = [  # (path, body, the sentence the message starts with, after the field's name if any)
    ("/v1/refine", {**OK, "question": "a\x00b"}, "question: must not contain control characters"),
    ("/v1/refine", {**OK, "feedback": "Try again."}, "feedback: must contain {question}"),
    ("/v1/refine", {**OK, "reference": "(" * 9 + "1" + ")" * 9}, "reference: brackets nest 9 deep"),
    ("/v1/refine", {**OK, "model": "a\nb"}, "model: must be one line"),
    ("/v1/chat/completions", {"messages": [{"role": "system", "content": None}, {"role": "user", "content": Q}]},
     "messages.0: a system message needs content"),
    ("/v1/chat/completions", {"messages": [{"role": "tool", "content": "42"}]}, "messages.0: 'tool' messages are"),
    ("/v1/chat/completions", {"stop": [""]}, "stop: stop must be up to 4 non-empty strings"),
    ("/v1/chat/completions", {"stream_options": {"include_usage": True}}, "stream_options is only allowed"),
]


@pytest.mark.parametrize("path,body,sentence", OWN_WORDS, ids=[f"own{i}" for i in range(len(OWN_WORDS))])
def test_a_validators_message_has_no_pydantic_prefix(server, model_name, path, body, sentence):
    if path.endswith("completions"):
        body = {"model": model_name, "messages": [{"role": "user", "content": Q}], **body}
    r = httpx.post(f"{server}{path}", json=body, timeout=60)
    err = named_4xx(r, 400, None)
    assert err["message"].startswith(sentence), err


@pytest.mark.parametrize("body", [{}, {"rating": None}, {"reference": None, "rating": None, "comment": None}])
def test_empty_feedback_says_what_to_give_in_its_own_words(traced, one_trace, body):
    r = httpx.post(f"{traced}/v1/refinements/{one_trace}/feedback", json=body, timeout=30)
    err = named_4xx(r, 400, None)
    assert err["message"] == "give at least one of reference, rating, comment", err


def test_a_verifiers_parameter_error_has_no_pydantic_prefix(server):
    r = httpx.post(f"{server}/v1/refine", timeout=60, json={**OK, "verifier": {"name": "numeric", "target": 1,
                                                                              "tolerance": -1}})
    err = named_4xx(r, 400, "verifier.tolerance")
    assert err["message"].startswith("verifier.tolerance: "), err


# ---- the Responses API (/v1/responses, issue 30): each 4xx names the field; traces off here ----------

RESPONSES_NAMED = [  # (change to a good request, what the 4xx names)
    ({"input": []}, "input"), ({"input": 5}, "input"), ({"input": [{"role": "user"}]}, "input.0"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]}, "input.0.content"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input.0.content"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, "input"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input"),
    ({"input": [{"role": "tool", "content": "x"}]}, "input.0.role"),
    ({"input": [{"role": "assistant", "content": "x"}]}, "input"), ({"input": "a\x00"}, "input.0.content.0.text"),
    ({"input": "   "}, "input"), ({"instructions": 5}, "instructions"), ({"tools": [{"type": "web_search"}]}, "tools"),
    ({"tool_choice": "required"}, "tool_choice"), ({"include": ["reasoning.encrypted_content"]}, "include"),
    ({"include": "all"}, "include"), ({"truncation": "auto"}, "truncation"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}, "text"),
    ({"background": True}, "background"), ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"reasoning": {"summary": "long"}}, "reasoning.summary"),
    ({"reasoning": "low"}, "reasoning"), ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": "9"}, "max_output_tokens"),
    ({"max_output_tokens": 50, "rise": {"max_total_tokens": 50}}, "max_output_tokens"),
    ({"max_output_tokens": 1, "rise": {"samples_per_turn": 2}}, "max_output_tokens"),
    ({"rise": {"max_turns": "3"}}, "rise.max_turns"), ({"rise": {"max_turns": 11}}, "rise.max_turns"),
    ({"rise": {"reference": "31", "early_stop": "agree"}}, "rise.early_stop"), ({"temperature": 3}, "temperature"),
    ({"store": True}, "store"), ({"store": "yes"}, "store"),
    ({"previous_response_id": "resp_" + HEX}, "previous_response_id"), ({"previous_response_id": ""}, "previous_response_id"),
    ({"stream_options": {"include_obfuscation": False}}, "stream_options"), ({"model": "other"}, "model"),
    ({"seed": 1}, "seed"), ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"), ({"user": "u\nv"}, "user"),
    ({"input": "Sam has 3 apples. " * 1000, "stream": True}, "input"),
]


@pytest.mark.parametrize("change,name", RESPONSES_NAMED,
                         ids=[f"resp-{n}{i}" for i, (_, n) in enumerate(RESPONSES_NAMED)])
def test_a_bad_responses_request_gets_a_4xx_naming_the_field(server, model_name, change, name):
    r = httpx.post(f"{server}/v1/responses", json={"model": model_name, "input": Q, **change}, timeout=60)
    named_4xx(r, (400, 404), name)
    ok = httpx.post(f"{server}/v1/responses", json={"model": model_name, "input": Q, "rise": {"max_turns": 1}},
                    timeout=60)
    assert ok.status_code == 200 and ok.json()["status"] == "completed", ok.text


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("bad", ["resp_" + "0" * 32, "resp-" + HEX, "resp_" + HEX[:31], "rr-" + HEX, "x",
                                 "' OR 1=1 --"])
def test_an_unknown_or_malformed_response_id_is_a_404(traced, method, bad):
    r = httpx.request(method, f"{traced}/v1/responses/{quote(bad, safe='')}", timeout=30)
    err = named_4xx(r, 404, None)
    assert err["param"] == "id" and "no stored response with id" in err["message"], err
