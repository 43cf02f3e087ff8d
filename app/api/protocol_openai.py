"""OpenAI chat-completions models: every field of OpenAI's request is known, and the response,
chunk and model shapes.

A field is one of three kinds (docs/api.md, "POST /v1/chat/completions"):
- honoured: `model`, `messages`, `temperature`, `top_p`, `max_tokens`, `max_completion_tokens`,
  `n`, `seed`, `stop`, `stream`, `stream_options`, `reasoning_effort`, `user`, `logprobs`, `store`
  (keep the completion in the trace store: app/api/serving.py `trace_wanted`) and `rise`;
- accepted at its neutral value only (`NEUTRAL`): a feature rise-serve does not offer, sent at the
  value that asks for nothing (`presence_penalty: 0`, `top_logprobs: 0`, `tools: []`, ...); any
  other value is a 400 naming the field (`unsupported`);
- accepted and without effect here: hints about OpenAI's own service (`metadata`,
  `service_tier`, `prompt_cache_key`, `safety_identifier`, `parallel_tool_calls`, ...).
A field OpenAI does not have is a 400. Types are strict: a string is not a number, a number is not
a boolean (JSON's `1` is a number for a float field).
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.api.protocol_refine import RefineOptions, few_messages, no_control_chars, one_line

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
_STRICT = ConfigDict(extra="forbid", strict=True)


class TextPart(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str

    _text = field_validator("text")(no_control_chars)


class ChatMessage(BaseModel):
    """A message of the conversation. Tool calls, audio and refusals are accepted only empty."""

    model_config = _STRICT
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(None, max_length=256)
    _name = field_validator("name")(one_line)
    # what some clients send on every assistant message, accepted at its neutral value
    tool_calls: list[dict] | None = None
    function_call: dict | None = None
    audio: dict | None = None
    refusal: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _role(cls, v):
        if isinstance(v, dict) and v.get("role") in ("tool", "function"):
            raise ValueError(f"{v['role']!r} messages are unsupported: tools (function calling) are not offered")
        return v

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, v):
        for part in v if isinstance(v, list) else ():
            if isinstance(part, dict) and part.get("type") != "text":
                raise ValueError(f"content parts of type {part.get('type')!r} are unsupported; only 'text' parts are")
        return v

    @field_validator("content")
    @classmethod
    def _content(cls, v):
        if isinstance(v, str):
            no_control_chars(v)
        return v

    @model_validator(mode="after")
    def _neutral(self):
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a {self.role} message needs content")
        if self.tool_calls or self.function_call is not None:
            raise ValueError("tool and function calls are unsupported: tools are not offered")
        if self.audio is not None:
            raise ValueError("audio is unsupported: rise-serve takes and gives text only")
        if self.refusal:
            raise ValueError("a refusal is unsupported here: give the assistant's text as content")
        return self

    def text(self) -> str:
        if self.content is None:
            return ""
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = _STRICT
    include_usage: bool | None = False
    include_obfuscation: bool | None = None  # accepted; rise-serve adds no obfuscation field


class ResponseFormat(BaseModel):
    model_config = _STRICT
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{
        "model": "rise-synth",
        "messages": [{"role": "user", "content": "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"}],
        "temperature": 0, "rise": {"max_turns": 5, "reference": "40"}}]})

    # honoured
    model: str
    messages: list[ChatMessage] = Field(..., min_length=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(None, gt=0.0, le=1.0, allow_inf_nan=False)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, description="independent refinements (default 1)")
    seed: int | None = Field(None, ge=0, le=2**62)
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    reasoning_effort: ReasoningEffort | None = Field(
        None, description="RISE's compute: the turns of RISE_REASONING_EFFORT_LEVELS (`rise.max_turns` wins)")
    user: str | None = Field(None, max_length=256, description="written to the request's log line")
    rise: RefineOptions = Field(default_factory=RefineOptions, description="RISE options (extra_body={'rise': {...}})")
    store: bool | None = Field(None, description="true: keep this completion in the trace store (a 400 when traces "
                                                 "are off); false or left out (OpenAI's default): keep nothing")

    # accepted at the neutral value only (NEUTRAL)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0, allow_inf_nan=False)
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict | None = None
    functions: list[dict] | None = None
    function_call: Literal["none", "auto"] | dict | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    audio: dict | None = None
    prediction: dict | None = None
    web_search_options: dict | None = None
    moderation: dict | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None = None

    # accepted, without effect here (hints for OpenAI's own service)
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = Field(None, max_length=16)
    safety_identifier: str | None = Field(None, max_length=256)
    prompt_cache_key: str | None = Field(None, max_length=1024)
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    prompt_cache_options: dict | None = None

    _text = field_validator("model", "user", "safety_identifier", "prompt_cache_key")(one_line)
    _messages = field_validator("messages", mode="before")(few_messages)

    @field_validator("stop")
    @classmethod
    def _stop(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop must be up to 4 non-empty strings")
        for stop in stops:
            no_control_chars(stop)
        return v

    @model_validator(mode="after")
    def _stream_options_need_a_stream(self):
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed with stream: true")
        return self

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())

    def choices(self) -> int:
        return 1 if self.n is None else self.n

    def unsupported(self) -> tuple[str, str] | None:
        """The first field set to a value rise-serve does not offer, and why: (field, message)."""
        for field, (neutral, shown, why) in NEUTRAL.items():
            value = getattr(self, field)
            if value is not None and not neutral(value, self):
                return field, f"'{field}' is unsupported: {why}; rise-serve accepts it only as {shown} (or left out)"
        return None


def _no_tools(req: ChatCompletionRequest) -> bool:
    return not req.tools and not req.functions


# field -> (is the value neutral, the neutral values in words, what rise-serve does not offer)
NEUTRAL: dict[str, tuple[Callable[[Any, ChatCompletionRequest], bool], str, str]] = {
    "frequency_penalty": (lambda v, r: v == 0, "0", "rise-serve samples without repetition penalties"),
    "presence_penalty": (lambda v, r: v == 0, "0", "rise-serve samples without repetition penalties"),
    "logit_bias": (lambda v, r: not v, "{}", "rise-serve does not bias tokens"),
    "top_logprobs": (lambda v, r: v == 0, "0", "the top alternatives of each token are not offered (`logprobs: "
                                               "true` gives the chosen tokens' log-probabilities)"),
    "response_format": (lambda v, r: v.type == "text", '{"type": "text"}',
                        "rise-serve answers in text; JSON modes and schemas are not offered"),
    "tools": (lambda v, r: not v, "[]", "tools (function calling) are not offered"),
    "tool_choice": (lambda v, r: v == "none" or (v == "auto" and _no_tools(r)), '"none"',
                    "tools (function calling) are not offered"),
    "functions": (lambda v, r: not v, "[]", "functions (function calling) are not offered"),
    "function_call": (lambda v, r: v == "none" or (v == "auto" and _no_tools(r)), '"none"',
                      "functions (function calling) are not offered"),
    "modalities": (lambda v, r: set(v) <= {"text"}, '["text"]', "rise-serve answers in text only"),
    "audio": (lambda v, r: False, "null", "audio output is not offered"),
    "prediction": (lambda v, r: False, "null", "predicted outputs are not offered"),
    "web_search_options": (lambda v, r: False, "null", "web search is not offered"),
    "moderation": (lambda v, r: False, "null", "moderation is not offered"),
    "verbosity": (lambda v, r: v == "medium", '"medium"', "rise-serve has one verbosity"),
    "service_tier": (lambda v, r: v in ("auto", "default"), '"auto" or "default"', "rise-serve has one service tier"),
}
