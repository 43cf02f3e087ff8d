"""Built-in checks, usable by name with parameters and no endpoint:

- `numeric`: the answer is a number within `tolerance` (default 1e-6) of `target`;
- `regex`: `pattern` matches the answer (`on: "answer"`, the default) or the whole text (`on: "text"`),
  anywhere or, with `full_match`, all of it; `ignore_case`;
- `json_schema`: the text (`on: "text"`, the default; a ```json fence is unwrapped) or the answer is
  JSON valid against `schema` (the `jsonschema` library; only local `$ref`s);
- `contains`: `value` occurs in the text (default) or the answer; `ignore_case`.

Parameters are checked when the request arrives (a bad one is a ValidationError naming the field),
the patterns of one request within one `patterns.Budget` (given as the validation context's
"budget"); a missing answer is incorrect. Built-ins give no feedback of their own: the request's template follows.

    .venv/bin/python -m pytest -q tests/refine/test_oracles_builtin.py
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from functools import lru_cache
from typing import Any, Callable, Literal

import regex
from jsonschema import SchemaError, ValidationError, validators
from referencing import Registry
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

from app.refine.oracles import Verdict
from app.verifiers import patterns
from app.verifiers.errors import CheckFailed, CheckTimeout

MAX_SCHEMA_CHARS = 20_000
SCHEMA_TIMEOUT_S = 1.0
_STRICT = ConfigDict(extra="forbid", strict=True)
_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d{1,3})?")
_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n?```", re.S)


class Numeric(BaseModel):
    model_config = _STRICT
    target: float = Field(allow_inf_nan=False, description="the number the answer must be")
    tolerance: float = Field(1e-6, ge=0, allow_inf_nan=False, description="largest absolute difference")

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        value = parse_number(answer)
        return Verdict(value is not None and abs(value - self.target) <= self.tolerance)


def parse_number(answer: str | None) -> float | None:
    """A plain number, with thousands separators, a leading $ or a trailing % allowed, or a
    fraction a/b; None when the answer is not one."""
    if answer is None or len(answer) > 100:
        return None
    s = answer.strip().replace(",", "").removeprefix("$").removesuffix("%").strip()
    parts = [p.strip() for p in s.split("/")]
    if len(parts) > 2 or not all(_NUMBER.fullmatch(p) for p in parts):
        return None
    if len(parts) == 2 and not float(parts[1]):
        return None
    value = float(parts[0]) / float(parts[1]) if len(parts) == 2 else float(parts[0])
    return value if math.isfinite(value) else None


class Regex(BaseModel):
    model_config = _STRICT
    pattern: str = Field(min_length=1, max_length=patterns.MAX_PATTERN_CHARS, description="a regular expression")
    on: Literal["answer", "text"] = "answer"
    full_match: bool = False
    ignore_case: bool = False
    _compiled: Any = PrivateAttr(None)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str, info: ValidationInfo) -> str:
        patterns.compile_pattern(v, budget=_budget(info.context))
        return v

    def model_post_init(self, context) -> None:
        self._compiled = patterns.compile_pattern(self.pattern, regex.IGNORECASE if self.ignore_case else 0,
                                                  _budget(context))

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        subject = text if self.on == "text" else answer
        if subject is None:
            return Verdict(False)
        return Verdict(await patterns.in_check_thread(patterns.search, self._compiled, subject, self.full_match))


class JsonSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)
    json_schema: dict = Field(alias="schema", description="a JSON Schema (draft from its $schema, else 2020-12)")
    on: Literal["text", "answer"] = "text"
    _validator: Any = PrivateAttr(None)

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, v: dict, info: ValidationInfo) -> dict:
        if len(json.dumps(v)) > MAX_SCHEMA_CHARS:
            raise ValueError(f"the schema is longer than {MAX_SCHEMA_CHARS} characters as JSON")
        budget = _budget(info.context)
        compiled = _walk(v, budget)
        _check_schema(v, budget)
        if info.context is not None:  # for model_post_init: each pattern compiled once
            info.context["patterns"] = compiled
        return v

    def model_post_init(self, context) -> None:
        compiled = (context or {}).get("patterns") or {}  # none: each compiled when first used
        # an empty registry: a $ref can only point inside the schema, never fetch a URL or a file
        cls = _guarded(validators.validator_for(self.json_schema), compiled)
        self._validator = cls(self.json_schema, registry=Registry())

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        subject = answer if self.on == "answer" else _unfenced(text)
        if subject is None:
            return Verdict(False)
        try:
            instance = json.loads(subject)
        except (ValueError, RecursionError):
            return Verdict(False)
        work = patterns.in_check_thread(self._is_valid, instance)
        try:
            return Verdict(await asyncio.wait_for(work, SCHEMA_TIMEOUT_S))
        except asyncio.TimeoutError:
            raise CheckTimeout(f"schema validation ran longer than {SCHEMA_TIMEOUT_S}s") from None

    def _is_valid(self, instance) -> bool:
        _budget_of_thread.budget = patterns.Budget(SCHEMA_TIMEOUT_S)  # this worker thread stops there (_capped)
        try:
            return next(self._validator.iter_errors(instance), None) is None
        except CheckTimeout:
            raise
        except Exception as e:  # noqa: BLE001 - e.g. a $ref that cannot be resolved
            raise CheckFailed(f"schema validation failed: {type(e).__name__}") from None
        finally:
            _budget_of_thread.budget = None


def _unfenced(text: str) -> str:
    m = _FENCE.search(text)
    return m.group(1) if m else text.strip()


def _budget(context: dict | None) -> patterns.Budget:
    """The request's budget for its patterns (the validation context's), or one of its own."""
    budget = (context or {}).get("budget")
    return budget if budget is not None else patterns.Budget()


def _walk(node, budget: patterns.Budget, compiled: dict | None = None, depth: int = 0) -> dict[str, regex.Pattern]:
    """Refuse what the schema must not do: refer outside itself, nest absurdly, or hold a pattern
    that is unsafe to run (app/verifiers/patterns.py); the schema's patterns, compiled within `budget`."""
    compiled = {} if compiled is None else compiled
    if depth > 32:
        raise ValueError("the schema nests deeper than 32 levels")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str) and not value.startswith("#"):
                raise ValueError(f"{key} {value[:100]!r} refers outside the schema; only local references (#...) "
                                 "are allowed")
            if key == "pattern" and isinstance(value, str):
                _check_pattern(value, budget, compiled)
            if key == "patternProperties" and isinstance(value, dict):
                for p in value:
                    _check_pattern(p, budget, compiled)
            _walk(value, budget, compiled, depth + 1)
    elif isinstance(node, list):
        for value in node:
            _walk(value, budget, compiled, depth + 1)
    return compiled


def _check_pattern(p: str, budget: patterns.Budget, compiled: dict) -> None:
    if p in compiled:
        return
    try:
        compiled[p] = patterns.compile_pattern(p, budget=budget)
    except ValueError as e:
        raise ValueError(f"pattern {p[:100]!r}: {e}") from None


def _check_schema(schema: dict, budget: patterns.Budget) -> None:
    """jsonschema's `check_schema` (the schema against its draft's metaschema) within the budget's
    time: a 20 KB schema can take a second (`{"allOf": [{}, {}, ...]}`), and the check stops itself."""
    cls = validators.validator_for(schema)
    meta = _capped_class(validators.validator_for(cls.META_SCHEMA, default=cls))
    _budget_of_thread.budget = budget
    try:
        error = next(meta(cls.META_SCHEMA, format_checker=meta.FORMAT_CHECKER).iter_errors(schema), None)
    except CheckTimeout:
        raise ValueError(f"checking the schema took longer than {budget.seconds:g} s; send a smaller schema") \
            from None
    finally:
        _budget_of_thread.budget = None
    if error is not None:
        e = SchemaError.create_from(error)
        where = "/".join(str(p) for p in e.path) or "the top level"
        raise ValueError(f"not a valid JSON Schema at {where}: {e.message[:300]}")


_budget_of_thread = threading.local()  # .budget: its .until is when the validation on this thread must stop


def _capped(keyword):
    """A keyword's check that first stops the validation once its thread's time is up: a schema
    can make the work exponential (`anyOf` of two `$ref`s to the next level, 40 levels deep), and a
    worker thread cannot be cancelled from outside, so it checks its own clock at every keyword."""

    def check(validator, value, instance, schema):
        budget = getattr(_budget_of_thread, "budget", None)
        if budget is not None and time.monotonic() > budget.until:
            raise CheckTimeout(f"schema validation ran longer than {SCHEMA_TIMEOUT_S}s")
        return keyword(validator, value, instance, schema)

    return check


@lru_cache(maxsize=16)
def _capped_class(cls):
    """The validator class with every keyword under its thread's time cap (`_capped`)."""
    return validators.extend(cls, {name: _capped(check) for name, check in cls.VALIDATORS.items()})


def _guarded(cls, compiled: dict[str, regex.Pattern]):
    """The validator class with `pattern` and `patternProperties` run by the `regex` module under a
    time cap (jsonschema's own use `re`, which cannot be stopped), from the patterns the schema's
    check `compiled`, and every keyword under the validation's time cap (`_capped`)."""

    def get(p: str) -> regex.Pattern:
        return compiled.get(p) or patterns.compile_pattern(p)

    def pattern(validator, p, instance, schema):
        if validator.is_type(instance, "string") and not patterns.search(get(p), instance):
            yield ValidationError(f"does not match the pattern {p!r}")

    def pattern_properties(validator, props, instance, schema):
        if not validator.is_type(instance, "object"):
            return
        for p, subschema in props.items():
            for k, v in instance.items():
                if patterns.search(get(p), k):
                    yield from validator.descend(v, subschema, path=k, schema_path=p)

    keywords = {**cls.VALIDATORS, "pattern": pattern, "patternProperties": pattern_properties}
    return validators.extend(cls, {name: _capped(check) for name, check in keywords.items()})


class Contains(BaseModel):
    model_config = _STRICT
    value: str = Field(min_length=1, max_length=1000, description="the text that must occur")
    on: Literal["text", "answer"] = "text"
    ignore_case: bool = False

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        subject = text if self.on == "text" else answer
        if subject is None:
            return Verdict(False)
        if self.ignore_case:
            return Verdict(self.value.casefold() in subject.casefold())
        return Verdict(self.value in subject)


# name -> the check's parameters model, which is itself the oracle
BUILTINS: dict[str, Callable[..., Any]] = {"numeric": Numeric, "regex": Regex, "json_schema": JsonSchema,
                                           "contains": Contains}
