"""What the remote engine reads from an OpenAI-compatible upstream, and how it reads it.

The models are lenient about fields they do not use (servers add their own: vLLM's
`prompt_logprobs`, rise-serve's `rise` trace) and strict about the shapes the engine relies on:
`choices` is a list of objects, a `delta` is an object, text is a string or null, token counts are
integers. Anything else fails validation, which the engine reports as a 502 `upstream_error`.
"""

from __future__ import annotations

import math
import re
import time
from email.utils import parsedate_to_datetime
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from app.engines.base import Completion, FinishReason


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Usage(_Lenient):
    prompt_tokens: StrictInt = Field(ge=0)
    completion_tokens: StrictInt = Field(ge=0)


class Message(_Lenient):
    content: StrictStr | None = None


class TokenLogprob(_Lenient):
    logprob: StrictFloat | StrictInt
    token: StrictStr = ""


class Logprobs(_Lenient):
    content: list[TokenLogprob] | None = None

    def values(self) -> list[float]:
        return [float(t.logprob) for t in self.content or ()]

    def tokens(self) -> list[str]:
        return [t.token for t in self.content or ()]


class Choice(_Lenient):
    message: Message
    finish_reason: StrictStr | None = None
    logprobs: Logprobs | None = None


class ChatCompletion(_Lenient):
    """A non-streamed `chat.completion`: the first choice and the usage are what the engine reads."""

    choices: list[Choice] = Field(min_length=1)
    usage: Usage


class Delta(_Lenient):
    content: StrictStr | None = None
    reasoning_content: StrictStr | None = None  # vLLM's reasoning parsers, rise-serve's turns
    reasoning: StrictStr | None = None  # the name some other servers use

    def thinking(self) -> str:
        return self.reasoning_content or self.reasoning or ""


class ChunkChoice(_Lenient):
    delta: Delta = Field(default_factory=Delta)
    finish_reason: StrictStr | None = None
    logprobs: Logprobs | None = None


class Chunk(_Lenient):
    """One `chat.completion.chunk` of a stream (the last one, with `include_usage`, holds usage)."""

    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None


class ErrorInfo(_Lenient):
    message: str = ""
    type: str | None = None
    code: str | int | None = None


class ModelEntry(_Lenient):
    id: StrictStr
    owned_by: str | None = None
    max_model_len: StrictInt | None = Field(None, gt=0)


class ModelList(_Lenient):
    data: list[ModelEntry]


RISE_SERVE = "rise-serve"  # the `owned_by` of rise-serve's /v1/models entries

# Messages of context-length refusals: OpenAI ("maximum context length"), vLLM ("...longer than the
# maximum model length", "max_model_len"), llama.cpp ("exceeds the available context size"),
# rise-serve ("the model's context is N tokens"), SGLang/TGI ("too long", "input validation").
_CONTEXT = re.compile(r"context[ _](length|size|window)|model'?s context|maximum model length|max_model_len"
                      r"|too long|longer than the maximum|exceeds? the (available )?context", re.IGNORECASE)
_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}


def is_context_error(message: str, code: object = None) -> bool:
    """Whether an upstream refusal says the prompt does not fit the model's context."""
    return (isinstance(code, str) and code in _CONTEXT_CODES) or bool(_CONTEXT.search(message or ""))


def stream_error(payload: object) -> ErrorInfo | None:
    """The error an upstream reports inside an HTTP 200 stream: `{"error": {...}}` (OpenAI, vLLM,
    rise-serve) or vLLM's older flat `{"object": "error", "message": ...}`; None for a chunk."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if error is None and payload.get("object") == "error":
        error = payload
    if error is None:
        return None
    try:
        return ErrorInfo.model_validate(error)
    except ValidationError:  # an error all the same, in a shape of its own
        return ErrorInfo(message=str(error)[:500])


def error_message(body: object, fallback: str) -> tuple[str, object]:
    """(message, code) of an error response body in any of the usual shapes."""
    info = stream_error(body)
    if info is None:
        return fallback[:500], None
    return (info.message or fallback)[:500], info.code


def retry_after_s(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def finish(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "abort" if reason == "abort" else "stop"


# rise-serve streams a turn as reasoning (`reasoning` and `reasoning_content`): a "[turn k]" line,
# the sample's tokens, then an "[answer: ...]" line (app/api/openai_render.py), and the final answer
# as `content` at the end.
_RISE_MARKER = re.compile(r"\[turn \d+\]\n|\n\[answer: .*\]\n", re.DOTALL)


class StreamAssembler:
    """Builds one completion from a stream's chunks and passes its text on as it arrives.

    The completion's text is the `content` the upstream sent. Reasoning deltas are passed on too
    (a reasoning model's thinking, or a rise-serve upstream's turn tokens) but are not part of the
    text. From a rise-serve upstream the turn's tokens arrive first as reasoning and then again as
    the final `content`: the content that repeats what was already passed on is not passed on twice.
    """

    def __init__(self, emit: Callable[[str], None], rise_upstream: bool = False) -> None:
        self.emit, self.rise_upstream = emit, rise_upstream
        self.text, self.shown = "", ""  # the content so far; the rise-serve turn text passed on
        self.finish: FinishReason = "stop"
        self.usage: Usage | None = None
        self.logprobs: list[float] = []  # of the content's tokens, when the upstream sends them
        self.tokens: list[str] = []

    def feed(self, chunk: Chunk) -> None:
        for c in chunk.choices[:1]:  # one sample per request (n=1)
            thinking = c.delta.thinking()
            if thinking:
                self._thinking(thinking)
            if c.delta.content:
                self._content(c.delta.content)
            if c.logprobs is not None:
                self.logprobs += c.logprobs.values()
                self.tokens += c.logprobs.tokens()
            if c.finish_reason:
                self.finish = finish(c.finish_reason)
        self.usage = chunk.usage or self.usage

    def _thinking(self, piece: str) -> None:
        if self.rise_upstream:
            if _RISE_MARKER.fullmatch(piece):
                return
            self.shown += piece
        self.emit(piece)

    def _content(self, piece: str) -> None:
        before, self.text = self.text, self.text + piece
        if self.shown.startswith(before):  # still repeating (or extending) the turn text shown
            start = max(len(before), len(self.shown))
            if self.text[:len(self.shown)] == self.shown[:len(self.text)]:
                piece = self.text[start:]
        if piece:
            self.emit(piece)

    def completion(self) -> Completion | None:
        """The finished completion, or None when the stream held no usage."""
        if self.usage is None:
            return None
        return Completion(self.text, self.usage.prompt_tokens, self.usage.completion_tokens, self.finish,
                          self.logprobs or None, self.tokens or None)
