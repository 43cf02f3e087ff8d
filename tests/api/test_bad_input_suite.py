"""More than a hundred malformed requests against the running server: each gets a 4xx naming the
problem (never a traceback), and the server answers a normal request right after."""

import json

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
                 {"name": "contains", "value": "x", "url": "http://example.com"}],
    "feedback": ["Try again.", "", "{question}" + "x" * 2000, 5, "a\x00 {question}", ["{question}"]],
}
BOTH = [({"reference": "31", "verifier": {"name": "contains", "value": "3"}}, "verifier")]
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
    if field not in (None, "chat"):
        assert field in (err["param"] or "") or field in err["message"], err
    ok = httpx.post(f"{server}/v1/refine", json=OK, timeout=60)
    assert ok.status_code == 200
