"""OpenAI Responses API request model (`POST /v1/responses`): every field of OpenAI's request is
known, as in the chat API (app/api/protocol_openai.py).

A field is one of three kinds (docs/api.md, "The Responses API"):
- honoured: `model`, `input` (a string, or messages with `input_text` parts; an earlier answer's
  `output_text` parts and reasoning items may be sent back), `instructions`, `max_output_tokens`
  (the budget over all turns, as `rise.max_total_tokens`), `temperature`, `top_p`,
  `reasoning` (`effort`: the turns, as chat's `reasoning_effort`; `summary`: a summary per reasoning
  item), `metadata`, `user`, `store`, `previous_response_id`, `stream`, `include`
  (`message.output_text.logprobs` only) and `rise`;
- accepted at its neutral value only (`NEUTRAL`): a feature rise-serve does not offer, sent at the
  value that asks for nothing (`tools: []`, `truncation: "disabled"`, `text.format` text, ...); any
  other value is a 400 naming the field (`unsupported`);
- accepted and without effect here: hints about OpenAI's own service (`parallel_tool_calls`,
  `service_tier`, `prompt_cache_key`, `safety_identifier`, ...).
A field OpenAI does not have is a 400. Types are strict, as chat's.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.api.protocol_openai import ReasoningEffort
from app.api.protocol_refine import RefineOptions, few_messages, no_control_chars, one_line

_STRICT = ConfigDict(extra="forbid", strict=True)
LOGPROBS = "message.output_text.logprobs"  # the one `include` value rise-serve honours
NOT_TOOLS = "tools (function calling, built-in tools) are not offered"


class InputText(BaseModel):
    """A text part: the client's `input_text`, or an earlier answer's `output_text` sent back."""

    model_config = _STRICT
    type: Literal["input_text", "output_text"]
    text: str
    annotations: list | None = None  # on an earlier answer's output_text: accepted, not used
    logprobs: list | None = None

    _text = field_validator("text")(no_control_chars)


class InputItem(BaseModel):
    """An item of `input`: a message (`type` "message", or left out as OpenAI's easy form), or an
    earlier response's reasoning item sent back as clients do: accepted, and not context (as chat's
    reasoning is not: the conversation is the questions and the answers)."""

    model_config = _STRICT
    type: Literal["message", "reasoning"] = "message"
    role: Literal["user", "assistant", "system", "developer"] | None = None
    content: list[InputText] | None = None  # a string arrives as one input_text part
    id: str | None = Field(None, max_length=256)  # an earlier answer's item id: accepted, not used
    status: Literal["in_progress", "completed", "incomplete"] | None = None
    phase: Literal["commentary", "final_answer"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v):
        if isinstance(v, dict) and v.get("type") == "reasoning":  # only its kind matters: it is not context
            return {"type": "reasoning"}
        return v

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, v):
        if isinstance(v, str):
            return [{"type": "input_text", "text": v}]
        if v is not None and not isinstance(v, list):
            raise ValueError("must be a string or a list of input_text parts")
        for part in v or ():
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("input_text", "output_text"):
                raise ValueError(f"content parts of type {kind!r} are unsupported: rise-serve takes text only "
                                 "(input_text parts)")
        return v

    @model_validator(mode="after")
    def _message(self):
        if self.type == "message" and (self.role is None or self.content is None):
            raise ValueError("a message needs a role and content")
        return self

    def text(self) -> str:
        return "".join(p.text for p in self.content or ())


def _item_kind(item: Any) -> str:
    return (item.get("type") or "message") if isinstance(item, dict) else "message"


def _string_or_items(schema: dict) -> None:
    """`input` in the OpenAPI schema: a string (one user message) or a list of items."""
    items = schema.pop("items")
    schema.pop("type", None)
    schema["anyOf"] = [{"type": "string"}, {"type": "array", "items": items}]


class ReasoningParam(BaseModel):
    model_config = _STRICT
    effort: ReasoningEffort | None = Field(None, description="RISE's compute: the turns of "
                                                             "RISE_REASONING_EFFORT_LEVELS (`rise.max_turns` wins)")
    summary: Literal["auto", "concise", "detailed"] | None = Field(
        None, description="a summary per reasoning item (turn, answer, verdict)")
    generate_summary: Literal["auto", "concise", "detailed"] | None = Field(None, description="`summary`'s old name")


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    type: Literal["text", "json_object", "json_schema"]


class TextParam(BaseModel):
    model_config = _STRICT
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_obfuscation: bool | None = None  # accepted; rise-serve adds no obfuscation field


class ResponseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "model": "rise-synth", "input": "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?",
        "temperature": 0, "reasoning": {"effort": "low", "summary": "auto"}, "rise": {"reference": "40"}}]})

    # honoured
    model: str
    input: list[InputItem] = Field(..., description="the question, or a conversation ending with the user's "
                                                    "question", json_schema_extra=_string_or_items)
    instructions: str | None = Field(None, description="a system message before the conversation (not carried "
                                                       "over by previous_response_id)")
    max_output_tokens: int | None = Field(None, ge=1, description="tokens over all turns and samples (reasoning "
                                                                  "included): rise.max_total_tokens")
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    reasoning: ReasoningParam | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    user: str | None = Field(None, max_length=256, description="written to the request's log line")
    store: bool | None = Field(None, description="true: keep this response (GET /v1/responses/{id}; a 400 when "
                                                 "traces are off); false or left out (as chat's): keep nothing")
    previous_response_id: str | None = Field(None, min_length=1, max_length=64, description="continue a stored response's "
                                                                              "conversation")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    include: list[str] | None = Field(None, max_length=16)
    rise: RefineOptions = Field(default_factory=RefineOptions, description="RISE options (extra_body={'rise': {...}})")

    # accepted at the neutral value only (NEUTRAL)
    tools: list[dict] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict | None = None
    truncation: Literal["auto", "disabled"] | None = None
    text: TextParam | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    background: bool | None = None
    background_options: dict | None = None
    conversation: str | dict | None = None
    prompt: dict | None = None
    context_management: list[dict] | None = None
    moderation: dict | None = None
    image: dict | None = None
    access_programs: dict | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None

    # accepted, without effect here (no tools; hints for OpenAI's own service)
    parallel_tool_calls: bool | None = None
    max_tool_calls: int | None = Field(None, ge=1)
    safety_identifier: str | None = Field(None, max_length=256)
    prompt_cache_key: str | None = Field(None, max_length=1024)
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict | None = None

    _line = field_validator("model", "user", "safety_identifier", "prompt_cache_key", "previous_response_id")(one_line)
    _instructions = field_validator("instructions")(no_control_chars)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v):
        for key, value in (v or {}).items():
            if len(key) > 64 or len(value) > 512:
                raise ValueError("keys may have at most 64 characters and values at most 512 (OpenAI's limits)")
            no_control_chars(key)
            no_control_chars(value)
        return v

    @field_validator("input", mode="before")
    @classmethod
    def _items(cls, v):
        """A string is one user message; items other than messages (and reasoning sent back) are
        refused here, naming the item."""
        if isinstance(v, str):
            return [{"type": "message", "role": "user", "content": v}]
        if not isinstance(v, list):
            raise ValueError("must be a string or a list of messages")
        few_messages(v)
        for i, item in enumerate(v):
            kind = _item_kind(item)
            if kind not in ("message", "reasoning"):
                why = "items that refer to stored items are not offered (send the text)" if kind == "item_reference" \
                    else NOT_TOOLS
                raise ValueError(f"input[{i}] of type {kind!r} is unsupported: {why}")
        return v

    @field_validator("input")
    @classmethod
    def _not_empty(cls, v):
        if not any(m.type == "message" for m in v):
            raise ValueError("must hold at least one message")
        return v

    @model_validator(mode="after")
    def _stream_options_need_a_stream(self):
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        return self

    def messages(self) -> list[InputItem]:
        """The input's messages (reasoning items sent back are left out)."""
        return [m for m in self.input if m.type == "message"]

    def effort(self) -> str | None:
        return self.reasoning.effort if self.reasoning else None

    def summary(self) -> str | None:
        return (self.reasoning.summary or self.reasoning.generate_summary) if self.reasoning else None

    def logprobs(self) -> bool:
        return LOGPROBS in (self.include or ())

    def unsupported(self) -> tuple[str, str] | None:
        """The first field set to a value rise-serve does not offer, and why: (field, message)."""
        for value in self.include or ():
            if value != LOGPROBS:
                return "include", (f"include value {value!r} is unsupported: rise-serve can include only "
                                   f"'{LOGPROBS}' (or nothing)")
        for field, (neutral, shown, why) in NEUTRAL.items():
            value = getattr(self, field)
            if value is not None and not neutral(value, self):
                return field, f"'{field}' is unsupported: {why}; rise-serve accepts it only as {shown} (or left out)"
        return None


def _plain_text(v: TextParam, _r) -> bool:
    return (v.format is None or v.format.type == "text") and v.verbosity in (None, "medium")


# field -> (is the value neutral, the neutral values in words, what rise-serve does not offer)
NEUTRAL: dict[str, tuple[Callable[[Any, ResponseRequest], bool], str, str]] = {
    "tools": (lambda v, r: not v, "[]", NOT_TOOLS),
    "tool_choice": (lambda v, r: v == "none" or (v == "auto" and not r.tools), '"none" or "auto"', NOT_TOOLS),
    "truncation": (lambda v, r: v == "disabled", '"disabled"', "a conversation too long for the context is a 400, "
                                                              "never truncated"),
    "text": (_plain_text, '{"format": {"type": "text"}}', "rise-serve answers in text; JSON modes, schemas and "
                                                         "other verbosities are not offered"),
    "top_logprobs": (lambda v, r: v == 0, "0", "the top alternatives of each token are not offered (include "
                                               f"'{LOGPROBS}' gives the chosen tokens' log-probabilities)"),
    "background": (lambda v, r: v is False, "false", "background responses are not offered"),
    "background_options": (lambda v, r: False, "null", "background responses are not offered"),
    "conversation": (lambda v, r: False, "null", "conversation objects are not offered (use previous_response_id)"),
    "prompt": (lambda v, r: False, "null", "stored prompt templates are not offered"),
    "context_management": (lambda v, r: not v, "[]", "context compaction is not offered"),
    "moderation": (lambda v, r: False, "null", "moderation is not offered"),
    "image": (lambda v, r: False, "null", "images are not offered"),
    "access_programs": (lambda v, r: False, "null", "access programs are not offered"),
    "service_tier": (lambda v, r: v in ("auto", "default"), '"auto" or "default"', "rise-serve has one service tier"),
}
