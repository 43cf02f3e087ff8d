"""Request and response models of the native API (`POST /v1/refine`)."""

from __future__ import annotations

from typing import Literal

import re

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_LINE_BREAK = re.compile(r"[\r\n\u2028\u2029\x85]")


def no_control_chars(value: str | None) -> str | None:
    """Text fields may hold newlines and tabs, not other control characters, nor lone UTF-16
    surrogates (JSON's "\\ud800" escapes decode to strings no encoder can write)."""
    if value is not None and _CONTROL.search(value):
        raise ValueError("must not contain control characters (other than newline, tab, carriage return)")
    if value is not None and _SURROGATE.search(value):
        raise ValueError("must not contain lone UTF-16 surrogates (\\ud800-\\udfff): not valid Unicode text")
    return value


MAX_MESSAGES = 1000  # a conversation's messages (chat's `messages`, the Responses API's `input` items)


def few_messages(value):
    """A conversation's list, counted before any message is validated: a 1 MB body of tiny
    messages took 100 ms and more of validation on the event loop."""
    if isinstance(value, list) and len(value) > MAX_MESSAGES:
        raise ValueError(f"a conversation may hold at most {MAX_MESSAGES} messages (this one has {len(value)})")
    return value


def one_line(value: str | None) -> str | None:
    """An identifier or a name: valid text on one line (it may reach a log line)."""
    no_control_chars(value)
    if value is not None and _LINE_BREAK.search(value):
        raise ValueError("must be one line (no line breaks)")
    return value


MAX_REFERENCE_DEPTH = 8


def simple_reference(value: str | None) -> str | None:
    """A reference is an answer, not a program: brackets nest at most MAX_REFERENCE_DEPTH deep
    (answer checks also run under a time cap, RISE_ANSWER_CHECK_TIMEOUT_S)."""
    no_control_chars(value)
    depth = deepest = 0
    for c in value or "":
        if c in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in ")]}":
            depth -= 1
    if deepest > MAX_REFERENCE_DEPTH:
        raise ValueError(f"brackets nest {deepest} deep; a reference answer may nest at most {MAX_REFERENCE_DEPTH}")
    return value


MAX_FEEDBACK_CHARS = 2000


def feedback_template(value: str | None) -> str | None:
    """A request's feedback: one text with `{question}` (replaced by the question), within the cap."""
    no_control_chars(value)
    if value is not None and "{question}" not in value:
        raise ValueError("must contain {question} (where the question is repeated to the model)")
    return value


class VerifierSpec(BaseModel):
    """`{"name": ..., **params}`: a built-in check (`numeric`, `regex`, `json_schema`, `contains`) or an
    operator's endpoint (RISE_VERIFIERS); the parameters are checked by the verifier (app/verifiers/)."""

    model_config = ConfigDict(extra="allow", strict=True, json_schema_extra={"examples": [
        {"name": "numeric", "target": 31, "tolerance": 0.5}, {"name": "regex", "pattern": "^\\d+$"},
        {"name": "json_schema", "schema": {"type": "object", "required": ["answer"]}},
        {"name": "contains", "value": "31"}]})
    name: str = Field(..., min_length=1, max_length=64, description="which verifier")

    _name = field_validator("name")(one_line)

    def params(self) -> dict:
        return dict(self.model_extra or {})


class RefineOptions(BaseModel):
    """The RISE knobs, shared by /v1/refine and the `rise` object of /v1/chat/completions. Types are
    strict, as OpenAI's API: a string is not a number, a number is not a boolean (a 400 naming the
    field); JSON's `1` still is a number for a float field."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_turns: int | None = Field(None, ge=1, description="K, the most turns to run (default RISE_DEFAULT_TURNS)")
    reference: str | None = Field(None, min_length=1, max_length=1000,  # length and nesting capped
                                  description="the reference answer: oracle mode, stop at the first correct turn; never echoed")
    samples_per_turn: int = Field(1, ge=1, description="parallel samples per turn")
    window: Literal["last", "full"] = Field("last", description="`last`: question + last attempt + feedback (RISE's default)")
    aggregation: Literal["majority", "last", "confidence"] = Field(
        "majority", description="`majority` over every sample of every turn; `last`: the last turn's answer; "
                                "`confidence`: votes weighed by each sample's confidence (token log-probs), "
                                "majority where the engine gives none (the response's `aggregation` says which)")
    tie_break: Literal["first", "last"] = Field(
        "last", description="which answer wins a tied vote: `last` (the most recent: a re-checking model's later turns "
                            "are its better ones) or `first` (the earliest, as `rise eval`'s m1)")
    early_stop: Literal["none", "agree", "settled", "confident"] = Field(
        "none", description="without an oracle, stop before max_turns: `agree` once the last `agree_turns` turns "
                            "agree, `settled` once the turns left cannot change the vote, `confident` once a turn's "
                            "confidence reaches RISE_CONFIDENCE_THRESHOLD (else as `settled`); `none`: all turns")
    agree_turns: int = Field(2, ge=2, description="for early_stop=agree: how many last turns must agree (<= max_turns)")
    max_total_tokens: int | None = Field(None, ge=1, description="completion tokens over all turns and samples; the "
                                                                 "loop ends with stop_reason `budget` before exceeding it")
    task: Literal["synthetic", "gsm8k", "math"] | None = Field(None, description="answer format (default RISE_TASK)")
    verifier: VerifierSpec | None = Field(None, description="oracle mode without a reference: a built-in check or "
                                          "an operator's verifier endpoint checks each turn (not with `reference`)")
    feedback: str | None = Field(None, min_length=1, max_length=MAX_FEEDBACK_CHARS,
                                 description="the feedback after a turn, in place of RISE's sentence; must contain "
                                             "{question}. A verifier's own feedback wins where it gives one")
    _feedback = field_validator("feedback")(feedback_template)

    _reference_text = field_validator("reference")(simple_reference)
    timeout: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False,
                                  description="seconds; the loop ends with the turns finished by then (capped by RISE_REQUEST_TIMEOUT_S)")
    speculative: StrictBool | None = Field(None, description="prompt-lookup speculation in the embedded engine for this "
                                           "refinement: true or false (the same output either way, greedy token for "
                                           "token, sampled in distribution); left out: RISE_SPECULATIVE")


class RefineRequest(RefineOptions):
    question: str = Field(..., min_length=1, description="the problem to solve")
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False,
                                      description="left out: 0 (greedy) with one sample per turn, "
                                                  "RISE_SAMPLED_TEMPERATURE (0.7) with several; 0 with several "
                                                  "samples is a 400 (they would all be the same)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1, description="per turn (default RISE_DEFAULT_MAX_TOKENS)")
    seed: int | None = Field(None, ge=0, le=2**62)
    stop: list[str] | None = Field(None, max_length=4)
    stream: StrictBool = False
    store: StrictBool | None = Field(None, description="keep this refinement in the trace store: left out, kept when "
                                                       "traces are on; false: kept nowhere; true: a 400 when "
                                                       "traces are off")
    model: str | None = Field(None, description="optional; the served model or one of its LoRA adapters (`/v1/models`)")

    _text = field_validator("question")(no_control_chars)
    _model = field_validator("model")(one_line)

    @field_validator("stop")
    @classmethod
    def _stop_text(cls, v):
        for stop in v or ():
            no_control_chars(stop)
        return v

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [
        {"question": "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?",
         "reference": "31", "max_turns": 5},
        {"question": "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?", "max_turns": 3,
         "temperature": 0.7, "seed": 1, "stream": False},
    ]})


class SampleOut(BaseModel):
    text: str
    answer: str | None
    correct: bool | None
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    confidence: float | None = Field(None, description="exp(mean token log-prob); null unless asked for (confidence "
                                                       "votes or early stopping) and given by the engine")
    feedback: str | None = Field(None, description="the verifier's own feedback on this sample, if it gave one")


class TurnOut(BaseModel):
    turn: int
    text: str
    answer: str | None
    correct: bool | None = Field(description="null when no oracle was given, or the verifier could not check it")
    checked: bool = Field(False, description="whether an oracle gave a verdict on this turn (false: unchecked, the "
                                             "loop went on as without an oracle)")
    feedback: str | None = Field(None, description="the feedback the next turn's prompt got after this turn (null "
                                                   "when no next turn began)")
    chosen_sample: int
    latency_s: float
    ttft_s: float | None
    prompt_tokens: int
    completion_tokens: int
    samples: list[SampleOut]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class RefineResponse(BaseModel):
    id: str
    object: Literal["refinement"] = "refinement"
    model: str
    final_answer: str | None
    final_text: str
    final_turn: int
    votes: dict[str, int]
    vote_weights: dict[str, float] | None = Field(None, description="with confidence votes: each answer's summed "
                                                                      "confidence")
    aggregation: Literal["majority", "last", "confidence"] = Field(
        "majority", description="the rule that chose the final answer (`majority` when confidence was asked for but "
                                "the engine gave no log-probs)")
    stop_reason: Literal["correct", "max_turns", "deadline", "context_length", "agreed", "settled", "confident",
                         "budget"] = Field(
        description="`correct`: the oracle passed a turn; `max_turns`: all turns ran; `deadline`: the request's "
                    "timeout ended the loop early, with the turns finished by then; `context_length`: the next "
                    "turn's prompt would not fit the model's context, so the loop ended with the turns it had; "
                    "`agreed`, `settled`, `confident`: an early-stopping rule ended it; `budget`: "
                    "max_total_tokens left too little for another turn")
    mode: Literal["oracle", "self"]
    correct: bool | None
    usage: Usage
    turns: list[TurnOut]
