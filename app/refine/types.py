"""What the loop takes and what it gives back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from app.engines.base import SamplingParams
from app.refine.feedback import DEFAULT_FEEDBACK

Window = Literal["full", "last"]
Aggregation = Literal["majority", "last", "confidence"]
TieBreak = Literal["first", "last"]
EarlyStop = Literal["none", "agree", "settled", "confident"]
ConfidenceForm = Literal["mean", "tail", "min"]
StopReason = Literal["correct", "max_turns", "deadline", "context_length", "agreed", "settled", "confident", "budget"]
AGGREGATIONS = ("majority", "last", "confidence")
EARLY_STOPS = ("none", "agree", "settled", "confident")


@dataclass(frozen=True)
class RefineConfig:
    """How one refinement runs.

    window: `last` (RISE's default) shows the model the question, its last attempt and the
        feedback; `full` shows every earlier attempt.
    aggregation: `majority` votes over the answers of all turns (and all samples); `last` takes
        the last turn's answer; `confidence` weighs each vote by the sample's confidence (see
        `app/refine/policy.py`), falling back to `majority` when the engine gives no log-probs.
    tie_break: which answer wins a tied vote: `first` (the one that appeared earliest) or `last`.
    early_stop: without an oracle, end before `max_turns` once the answer is settled (policy.py):
        `agree` (the last `agree_turns` turns agree), `settled` (the turns left cannot change the
        vote's winner), `confident` (a turn's confidence reaches `confidence_threshold`, else as
        `settled`); `none` runs every turn (RISE's protocol).
    max_total_tokens: completion tokens over all turns and samples; the loop never exceeds it and
        ends with `budget` once too little is left for another turn.
    confidence: how a sample's token log-probs become its confidence (policy.confidence).
    """

    max_turns: int = 5
    samples_per_turn: int = 1
    window: Window = "last"
    aggregation: Aggregation = "majority"
    tie_break: TieBreak = "first"
    feedback: str = DEFAULT_FEEDBACK
    sampling: SamplingParams = field(default_factory=SamplingParams)
    early_stop: EarlyStop = "none"
    agree_turns: int = 2
    confidence_threshold: float = 0.99
    max_total_tokens: int | None = None
    confidence: ConfidenceForm = "mean"

    @property
    def wants_logprobs(self) -> bool:
        return self.aggregation == "confidence" or self.early_stop == "confident"

    def __post_init__(self) -> None:
        if not 1 <= self.max_turns <= 1000:
            raise ValueError("max_turns must be at least 1")
        if not 1 <= self.samples_per_turn <= 1024:
            raise ValueError("samples_per_turn must be at least 1")
        if self.window not in ("full", "last"):
            raise ValueError("window must be 'full' or 'last'")
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}")
        if self.early_stop not in EARLY_STOPS:
            raise ValueError(f"early_stop must be one of {', '.join(EARLY_STOPS)}")
        if self.early_stop == "agree" and not 2 <= self.agree_turns <= self.max_turns:
            raise ValueError(f"agree_turns must be between 2 and max_turns ({self.max_turns})")
        if not 0.0 < self.confidence_threshold <= 1.0:
            raise ValueError("confidence_threshold must be in (0, 1]")
        if self.max_total_tokens is not None and self.max_total_tokens < self.samples_per_turn:
            raise ValueError("max_total_tokens must be positive and leave each sample of a turn at least one token")
        if self.confidence not in ("mean", "tail", "min"):
            raise ValueError("confidence must be 'mean', 'tail' or 'min'")
        if self.tie_break not in ("first", "last"):
            raise ValueError("tie_break must be 'first' or 'last'")
        if "{question}" not in self.feedback:
            raise ValueError("feedback must contain {question}")


@dataclass
class Sample:
    text: str
    answer: str | None
    correct: bool | None  # None: no oracle, so unknown
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    confidence: float | None = None  # in (0, 1], from the token log-probs; None when not asked or not known
    token_logprobs: list[float] | None = field(default=None, repr=False)  # kept for analysis, not in the trace
    token_texts: list[str] | None = field(default=None, repr=False)  # their tokens' text, where known
    feedback: str | None = field(default=None, repr=False)  # the oracle's own feedback on it (a verifier's), if any

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("token_logprobs", "token_texts")}


@dataclass
class Turn:
    index: int  # 1-based
    samples: list[Sample]
    chosen: int  # the sample that continues the conversation
    latency_s: float
    ttft_s: float | None
    feedback: str | None = field(default=None, repr=False)  # what the next turn's prompt got after this turn

    @property
    def text(self) -> str:
        return self.samples[self.chosen].text

    @property
    def answer(self) -> str | None:
        return self.samples[self.chosen].answer

    @property
    def correct(self) -> bool | None:
        return self.samples[self.chosen].correct

    def to_dict(self) -> dict:
        return {"turn": self.index, "text": self.text, "answer": self.answer, "correct": self.correct,
                "checked": self.correct is not None, "feedback": self.feedback,
                "chosen_sample": self.chosen, "latency_s": round(self.latency_s, 4),
                "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4),
                "prompt_tokens": sum(s.prompt_tokens for s in self.samples),
                "completion_tokens": sum(s.completion_tokens for s in self.samples),
                "samples": [s.to_dict() for s in self.samples]}


@dataclass
class RefineResult:
    final_answer: str | None
    final_text: str
    final_turn: int
    votes: dict[str, int]
    stop_reason: StopReason
    turns: list[Turn]
    oracle: bool
    correct: bool | None  # whether the final answer passed the oracle; None without one
    aggregation: str = "majority"  # the rule that chose the final answer (confidence falls back to majority)
    weights: dict[str, float] | None = None  # with confidence votes: each answer's summed confidence
    # answer string -> its group in the vote (equivalent answers share one), for metrics without re-checking
    answer_groups: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def same_answer(self, a: str | None, b: str | None) -> bool:
        """Whether two of this result's answers fell in one group of the vote."""
        return a is not None and b is not None and (a == b or self.answer_groups.get(a, -1) == self.answer_groups.get(b, -2))

    @classmethod
    def unfinished(cls, stop_reason: StopReason, oracle: bool) -> "RefineResult":
        """A refinement that ended before its first turn finished (e.g. one choice of several
        that ran out of time): no turns, no answer, empty text, `final_turn` 0."""
        return cls(None, "", 0, {}, stop_reason, [], oracle, False if oracle else None)

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for t in self.turns for s in t.samples)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for t in self.turns for s in t.samples)

    def to_dict(self) -> dict:
        return {"final_answer": self.final_answer, "final_text": self.final_text,
                "final_turn": self.final_turn, "votes": self.votes, "vote_weights": self.weights,
                "aggregation": self.aggregation, "stop_reason": self.stop_reason,
                "mode": "oracle" if self.oracle else "self", "correct": self.correct,
                "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                          "total_tokens": self.prompt_tokens + self.completion_tokens},
                "turns": [t.to_dict() for t in self.turns]}
