"""Majority voting over answers that may be written differently (`1,000` and `1000.0` are one
answer): answers are grouped by an equivalence test, then counted.

Tie rule: among answers with the top count, `first` picks the one that appeared earliest, `last`
the one that appeared most recently. Unparseable answers (None) get no vote.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

Equivalent = Callable[[str, str], bool]


def clusters(answers: Sequence[str | None], equivalent: Equivalent) -> list[tuple[str, list[int]]]:
    """Groups of equivalent answers, as (representative, positions), in order of first appearance."""
    groups: list[tuple[str, list[int]]] = []
    for i, a in enumerate(answers):
        if a is None:
            continue
        for rep, members in groups:
            if equivalent(a, rep):
                members.append(i)
                break
        else:
            groups.append((a, [i]))
    return groups


def majority(answers: Sequence[str | None], equivalent: Equivalent, tie_break: str = "first") -> tuple[str | None, dict[str, int]]:
    """The winning answer (or None when no answer parsed) and the vote counts."""
    winner, _, votes = tally(clusters(answers, equivalent), tie_break)
    return winner, votes


def tally(groups: list[tuple[str, list[int]]], tie_break: str = "first",
          weights: Sequence[float] | None = None) -> tuple[str | None, list[int], dict[str, float]]:
    """The winner of already-grouped answers when position i's vote weighs `weights[i]` (1 when
    None: plain counting): (representative, its positions, each group's score)."""
    if not groups:
        return None, [], {}
    scores = [(rep, m, len(m) if weights is None else sum(weights[i] for i in m)) for rep, m in groups]
    top = max(score for _, _, score in scores)
    tied = [(rep, m) for rep, m, score in scores if math.isclose(score, top, rel_tol=1e-9)]
    if tie_break == "first":
        winner = min(tied, key=lambda g: g[1][0])
    else:
        winner = max(tied, key=lambda g: g[1][-1])
    return winner[0], winner[1], {rep: score if weights is None else round(score, 6) for rep, _, score in scores}
