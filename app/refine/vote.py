"""Majority voting over answers that may be written differently (`1,000` and `1000.0` are one
answer): answers are grouped by an equivalence test, then counted.

Tie rule: among answers with the top count, `first` picks the one that appeared earliest, `last`
the one that appeared most recently. Unparseable answers (None) get no vote.
"""

from __future__ import annotations

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


def tally(groups: list[tuple[str, list[int]]], tie_break: str = "first") -> tuple[str | None, list[int], dict[str, int]]:
    """The winner of already-grouped answers: (representative, its positions, vote counts)."""
    if not groups:
        return None, [], {}
    top = max(len(m) for _, m in groups)
    tied = [(rep, m) for rep, m in groups if len(m) == top]
    if tie_break == "first":
        winner = min(tied, key=lambda g: g[1][0])
    else:
        winner = max(tied, key=lambda g: g[1][-1])
    return winner[0], winner[1], {rep: len(m) for rep, m in groups}
