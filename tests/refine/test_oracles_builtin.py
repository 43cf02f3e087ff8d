"""The built-in checks (app/verifiers/builtin.py), their parameter checks and the guards on
request-supplied patterns and schemas (app/verifiers/patterns.py); and each check through the
registry that counts its calls.

    .venv/bin/python -m pytest -q tests/refine/test_oracles_builtin.py
"""

import pytest

from app import metrics
from app.refine.oracles import Verdict
from app.verifiers import patterns
from app.verifiers.builtin import parse_number
from app.verifiers.errors import VerifierError
from app.verifiers.registry import Verifiers

TEXT = "23+17=40. 40-9=31. The answer is 31."
REG = Verifiers()


async def judge(name, params, answer="31", text=TEXT):
    return await REG.oracle(name, params).judge("Q?", answer, text, 1)


@pytest.mark.parametrize("answer,number", [("31", 31), ("-2.5", -2.5), ("1,234", 1234), ("$5", 5), ("50%", 50),
                                           ("3/4", 0.75), (" 7 ", 7), ("1e3", 1000), ("x", None), ("1/0", None),
                                           ("", None), (None, None), ("1e999", None), ("9" * 200, None)])
def test_parse_number(answer, number):
    assert parse_number(answer) == number


@pytest.mark.parametrize("name,params,answer,correct", [
    ("numeric", {"target": 31}, "31", True), ("numeric", {"target": 31.4, "tolerance": 0.5}, "31", True),
    ("numeric", {"target": 32}, "31", False), ("numeric", {"target": 31}, None, False),
    ("regex", {"pattern": r"^\d+$"}, "31", True), ("regex", {"pattern": r"^\d$"}, "31", False),
    ("regex", {"pattern": r"THE ANSWER IS 31\.", "on": "text", "ignore_case": True}, "x", True),
    ("regex", {"pattern": r"\d+", "full_match": True}, "31 apples", False), ("regex", {"pattern": "."}, None, False),
    ("json_schema", {"schema": {"type": "integer", "minimum": 30}, "on": "answer"}, "31", True),
    ("json_schema", {"schema": {"type": "integer", "maximum": 30}, "on": "answer"}, "31", False),
    ("json_schema", {"schema": {"type": "object"}}, "31", False),  # the text is not JSON
    ("contains", {"value": "answer is 31"}, "31", True), ("contains", {"value": "ANSWER", "ignore_case": True}, "", True),
    ("contains", {"value": "32"}, "31", False), ("contains", {"value": "3", "on": "answer"}, None, False),
])
async def test_each_builtin_check(name, params, answer, correct):
    assert await judge(name, params, answer) == Verdict(correct)


async def test_json_schema_reads_the_text_or_a_json_fence_and_runs_local_refs():
    schema = {"type": "object", "required": ["answer"], "properties": {"answer": {"$ref": "#/$defs/n"}},
              "$defs": {"n": {"type": "integer"}}}
    assert await judge("json_schema", {"schema": schema}, text='{"answer": 31}') == Verdict(True)
    assert await judge("json_schema", {"schema": schema}, text='Here:\n```json\n{"answer": 31}\n```') == Verdict(True)
    assert await judge("json_schema", {"schema": schema}, text='{"answer": "31"}') == Verdict(False)
    pattern = {"type": "string", "pattern": "^[a-z]+$"}
    assert await judge("json_schema", {"schema": pattern}, text='"abc"') == Verdict(True)
    assert await judge("json_schema", {"schema": pattern}, text='"ab1"') == Verdict(False)


@pytest.mark.parametrize("name,params,field", [
    ("nope", {}, "name"), ("numeric", {}, "target"), ("numeric", {"target": "31"}, "target"),
    ("numeric", {"target": 1, "tolerance": -1}, "tolerance"), ("numeric", {"target": 1, "tol": 1}, "tol"),
    ("regex", {"pattern": "("}, "pattern"), ("regex", {"pattern": "a" * 501}, "pattern"),
    ("regex", {"pattern": "(a{1000}){1000}"}, "pattern"), ("regex", {"pattern": "x", "on": "both"}, "on"),
    ("json_schema", {"schema": {"type": 5}}, "schema"), ("json_schema", {"schema": "object"}, "schema"),
    ("json_schema", {"schema": {"$ref": "https://example.com/s.json"}}, "schema"),
    ("json_schema", {"schema": {"properties": {"a": {"pattern": "(x+"}}}}, "schema"),
    ("json_schema", {"schema": {"patternProperties": {"((a{999}){999})": {}}}}, "schema"),
    ("contains", {"value": ""}, "value"), ("contains", {}, "value"),
])
def test_bad_parameters_name_the_field(name, params, field):
    with pytest.raises(VerifierError) as e:
        REG.oracle(name, params)
    assert e.value.field == field and e.value.message


def test_repeat_cost_multiplies_nested_counted_repeats():
    assert patterns.repeat_cost("a{65535}") == 65535
    assert patterns.repeat_cost("(a{1000}){1000}") > patterns.MAX_REPEAT_COST
    assert patterns.repeat_cost("[0-9a-f]{8}-[0-9a-f]{4}") == 6 * 8 + 1 + 6 * 4  # a class counts its length
    assert patterns.repeat_cost(r"\(a{5}\){5}") == 11 and patterns.repeat_cost("[{]{3}") == 3


def _count(name, outcome):
    return metrics.VERIFIER_CALLS.labels(name, outcome)._value.get()


async def test_catastrophic_backtracking_is_cut_off_and_the_turn_unchecked():
    before = _count("regex", "timeout")
    verdict = await judge("regex", {"pattern": r"(x+x+)+y", "on": "text"}, text="x" * 5000)
    assert verdict == Verdict(None) and _count("regex", "timeout") == before + 1


async def test_the_registry_counts_verdicts():
    before = _count("contains", "correct"), _count("contains", "incorrect")
    await judge("contains", {"value": "31"})
    await judge("contains", {"value": "32"})
    assert (_count("contains", "correct"), _count("contains", "incorrect")) == (before[0] + 1, before[1] + 1)
