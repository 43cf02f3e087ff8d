"""The engine protocol: the one door through which the loop, evaluation, training and the server
reach a model. An engine turns chat conversations into sampled completions; it knows nothing
about turns, feedback or answers.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Callable, Literal, Protocol, Sequence, runtime_checkable

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": "..."}
Conversation = Sequence[Message]
FinishReason = Literal["stop", "length", "abort"]
# on_delta(prompt_index, sample_index, text): called as text is produced, in order per sample.
DeltaCallback = Callable[[int, int, str], None]
# A temperature below this samples greedily, as 0 does (vLLM's rule too): smaller ones only add
# float overflow (logits / 1e-45 are infinities in float32).
GREEDY_BELOW = 1e-5


# The instant (time.monotonic()) by which the caller needs this call's answer, when it has one: set
# by the loop around each engine call (an object with `.at`, which may move earlier), so that an
# engine that could wait (an upstream's Retry-After) knows whether the wait fits.
CALL_DEADLINE: contextvars.ContextVar[object | None] = contextvars.ContextVar("rise_call_deadline", default=None)


# The refinement turn (1-based) this engine call belongs to, set by the loop around each call: an
# engine may count its work by turn (the embedded engine's speculation metrics).
CALL_TURN: contextvars.ContextVar[int | None] = contextvars.ContextVar("rise_call_turn", default=None)


def call_deadline() -> float | None:
    return getattr(CALL_DEADLINE.get(), "at", None)


# The refinement an engine call belongs to, when it has one: set by the loop for the whole refinement
# (`refine(..., session=...)`), so that a remote engine can send its upstream a key that keeps every
# turn of one sample on the same replica of a fleet (its prefix cache holds the earlier turns).
CALL_SESSION: contextvars.ContextVar[str | None] = contextvars.ContextVar("rise_call_session", default=None)


def session_key(sample: int) -> str | None:
    """The upstream session key of sample `sample` of the running refinement (None outside one): 32
    hex digits derived from the refinement's id, one key per parallel sample and the same at every
    turn. A hash, so that the upstream never sees the id itself (which reads the stored trace)."""
    session = CALL_SESSION.get()
    if session is None:
        return None
    return hashlib.sha256(f"{session}/{sample}".encode()).hexdigest()[:32]


class EngineError(RuntimeError):
    """The engine failed to produce a completion; `status` is the HTTP status the server answers.
    `fault` says whether the engine is to blame (counted as an engine error; enough in a row flip
    readiness): False for what the request caused or an upstream's rate limit. `transient`: the
    call broke off mid-way (an upstream that reset the connection, cut its stream or answered 5xx),
    so the loop may run the turn again (`refine(..., turn_retries=...)`)."""

    status = 500
    code = "engine_error"
    fault = True
    transient = False


class PromptTooLongError(ValueError):
    """A prompt does not fit the model's context with room to generate (a 4xx for the server)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 (or anything below `GREEDY_BELOW`, which becomes 0) is greedy;
    `seed` makes sampling reproducible per sample (sample i of a prompt uses seed + i); `logprobs`
    asks for each generated token's log-probability under the model (temperature 1, before
    sampling's truncation): `Completion.token_logprobs`, or None where an engine cannot give it."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 128
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    speculative: bool | None = None  # prompt-lookup speculation on or off for this call; None: the engine's default

    def __post_init__(self) -> None:
        checks = [
            (math.isfinite(self.temperature) and 0.0 <= self.temperature <= 10.0, "temperature must be in [0, 10]"),
            (math.isfinite(self.top_p) and 0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]"),
            (1 <= self.max_tokens <= 1_000_000, "max_tokens must be at least 1"),
            (1 <= self.n <= 1024, "n must be between 1 and 1024"),
            (self.seed is None or 0 <= self.seed < 2**63, "seed must be a non-negative 64-bit integer"),
            (all(isinstance(s, str) and s for s in self.stop), "stop strings must be non-empty"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.temperature < GREEDY_BELOW:  # every engine (and upstream) then sees plain greedy
            object.__setattr__(self, "temperature", 0.0)

    def with_seed(self, seed: int | None) -> "SamplingParams":
        return replace(self, seed=seed)


@dataclass
class Completion:
    """One sample for one prompt."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = "stop"
    token_logprobs: list[float] | None = None  # one per text token (EOS excluded), when asked and known
    token_texts: list[str] | None = None  # those tokens' text, where the engine knows it


@dataclass
class EngineInfo:
    model_name: str
    max_context: int
    extra: dict = field(default_factory=dict)


def encode_chat(tokenizer, conversation: Conversation) -> list[int]:
    """Token ids of a conversation rendered by the tokenizer's chat template, ready for the
    assistant's turn (the embedded and vLLM engines share this, so they see identical prompts)."""
    text = tokenizer.apply_chat_template(list(conversation), tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@runtime_checkable
class Engine(Protocol):
    """What every engine offers. `generate` must be safe to call from many tasks at once; a
    cancelled call stops its work in the engine."""

    @property
    def info(self) -> EngineInfo: ...

    async def generate(
        self,
        prompts: Sequence[Conversation],
        params: SamplingParams,
        on_delta: DeltaCallback | None = None,
    ) -> list[list[Completion]]:
        """For each prompt, `params.n` completions."""
        ...

    async def health(self) -> bool: ...

    async def aclose(self) -> None: ...
