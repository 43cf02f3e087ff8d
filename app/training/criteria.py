"""Which turns of a trajectory become training targets: the RISE code's criteria.

A trajectory is a question's assistant turns in order with their rewards (1 right, 0 wrong, -1 no
answer): an on-policy attempt, then the improved turn a source gave after feedback. Every turn that
a criterion keeps is a target weighted exp(r/τ); the others stay in the context with weight 0.

- `all`     every turn (reward-weighted regression does the sorting: exp(1/τ) against 1 and exp(-1/τ));
- `better`  the first turn, and a later turn whose reward is above the turn before it;
- `best`    the first turn, and a later turn whose reward is at least every earlier turn's;
- `success` only right turns.

`rise train rise` reports how many targets each criterion keeps on the collected data (the
`targets` of each iteration), whichever one it trained with.

    .venv/bin/python -m pytest -q tests/training/test_criteria.py
"""

from __future__ import annotations

import math

from app.answers.protocol import Checker

CRITERIA = ("all", "better", "best", "success")


def keeps(criterion: str, rewards: list[int], i: int) -> bool:
    """Whether turn `i` of a trajectory with these rewards is a target under `criterion`."""
    r = rewards[i]
    if criterion == "success":
        return r == 1
    if criterion == "all" or i == 0:
        return True
    if criterion == "better":
        return r > rewards[i - 1]
    if criterion == "best":
        return all(r >= earlier for earlier in rewards[:i])
    raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")


def kept(rewards: list[int]) -> dict[str, int]:
    """How many of the trajectory's turns each criterion keeps."""
    return {c: sum(keeps(c, rewards, i) for i in range(len(rewards))) for c in CRITERIA}


def reward(checker: Checker, text: str, reference: str) -> int:
    """1 right, 0 wrong, -1 no answer (RISE's environments' rewards)."""
    answer = checker.extract(text)
    if answer is None:
        return -1
    return 1 if checker.equivalent(answer, reference) else 0


def weight(r: float, tau: float) -> float:
    """A target's loss weight exp(r/τ)."""
    return math.exp(r / tau)
