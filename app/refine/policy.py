"""Adaptive compute without an oracle: how confident a sample is, how votes are weighed, and when
the loop may stop before `max_turns`. Pure functions over turns; equivalence comes from the
loop's checks (`app/refine/checks.py`), so nothing here knows engines or HTTP.

- confidence(token_logprobs, form): exp of the mean log-prob of the attempt's tokens (`mean`),
  of its last TAIL_TOKENS tokens (`tail`: where "The answer is N." sits), or of its least likely
  token (`min`). In (0, 1]; None when the engine gave no log-probs.
- weights_of: a vote counts 1 (majority) or its sample's confidence (confidence), for
  `app.refine.vote.tally`.
- early stopping: `agree` (the last `agree_turns` turns' answers are equivalent), `settled` (the
  votes the remaining turns could still cast cannot change the winner), `confident` (the last turn's
  answer has confidence >= `confidence_threshold`; otherwise as `settled`).
"""

from __future__ import annotations

import math
from typing import Sequence

from app.refine.checks import Checks
from app.refine.types import RefineConfig, Sample, Turn
from app.refine.vote import tally

TAIL_TOKENS = 8


def confidence(token_logprobs: Sequence[float] | None, form: str = "mean") -> float | None:
    values = [v for v in token_logprobs or () if v is not None and math.isfinite(v)]
    if not values:
        return None
    if form == "tail":
        values = values[-TAIL_TOKENS:]
    value = min(values) if form == "min" else sum(values) / len(values)
    return math.exp(min(value, 0.0))


def weights_of(samples: Sequence[Sample], config: RefineConfig) -> list[float] | None:
    """Each sample's vote weight under `config.aggregation`, or None for plain counting (also when
    confidence voting lacks a confidence for some sample: then the vote falls back to majority)."""
    if config.aggregation != "confidence" or any(s.confidence is None for s in samples):
        return None
    return [s.confidence for s in samples]


async def stop_reason(turns: Sequence[Turn], config: RefineConfig, checks: Checks) -> str | None:
    """Why the loop may stop now without an oracle (`agreed`, `settled`, `confident`), or None."""
    if config.early_stop == "none" or len(turns) >= config.max_turns:
        return None
    if config.early_stop == "agree":
        return "agreed" if await _agree(turns[-config.agree_turns:], config.agree_turns, checks) else None
    if config.early_stop == "confident":
        last = turns[-1].samples[turns[-1].chosen]
        if last.answer is not None and last.confidence is not None and last.confidence >= config.confidence_threshold:
            return "confident"
    return "settled" if await _settled(turns, config, checks) else None


async def _agree(turns: Sequence[Turn], needed: int, checks: Checks) -> bool:
    answers = [t.answer for t in turns]
    if len(answers) < needed or any(a is None for a in answers):
        return False
    return len(await checks.clusters(answers)) == 1


async def _settled(turns: Sequence[Turn], config: RefineConfig, checks: Checks) -> bool:
    """The winner leads by more than the votes still to come (each at most 1, confidence or not)."""
    samples = [s for t in turns for s in t.samples]
    weights = weights_of(samples, config)
    _, _, scores = tally(await checks.clusters([s.answer for s in samples]), config.tie_break, weights)
    if not scores:
        return False
    ranked = sorted(scores.values(), reverse=True) + [0.0]
    still_to_come = (config.max_turns - len(turns)) * config.samples_per_turn
    return ranked[0] - ranked[1] > still_to_come
