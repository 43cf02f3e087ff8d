"""The paper's metrics, computed from per-problem records of what each turn answered.

- p1@tk: oracle feedback, stop at the first correct turn; solved if any turn <= k is correct.
- m1@tk: no oracle, RISE's feedback every turn; majority vote over the answers of turns 1..k
  (tie rule `first`: the earliest-appearing of the tied answers wins; `last` is reported too).
- m5@t1: majority over 5 independent first-turn samples (the parallel baseline).
- pass@k: solved if any of k independent first-turn samples is correct.
- flow: between turns k-1 and k of the no-oracle run, the share of problems going wrong->right
  and right->wrong, and the accuracy of turn k's own answer.
Each figure has its sample count and standard error sqrt(p(1-p)/n).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from app.refine.vote import majority

Equivalent = Callable[[str, str], bool]


def stat(values: Sequence[float]) -> dict:
    n = len(values)
    p = sum(values) / n if n else 0.0
    return {"mean": round(p, 4), "se": round(math.sqrt(p * (1 - p) / n), 4) if n else None, "n": n}


def p1_at(oracle_correct: Sequence[Sequence[bool]], turns: int) -> dict[str, dict]:
    """oracle_correct[i] = correctness of problem i's turns, in order (the run stops at the first True)."""
    return {f"p1@t{k}": stat([float(any(c[:k])) for c in oracle_correct]) for k in range(1, turns + 1)}


def m1_at(answers: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent,
          turns: int, tie_break: str = "first") -> dict[str, dict]:
    out = {}
    for k in range(1, turns + 1):
        hits = []
        for ans, ref in zip(answers, references):
            winner, _ = majority(ans[:k], equivalent, tie_break)
            hits.append(float(equivalent(winner, ref)))
        out[f"m1@t{k}"] = stat(hits)
    return out


def m_at_t1(samples: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent, m: int = 5) -> dict:
    hits = [float(equivalent(majority(s[:m], equivalent)[0], ref)) for s, ref in zip(samples, references)]
    return {f"m{m}@t1": stat(hits)}


def pass_at(samples: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent) -> dict:
    width = min(len(s) for s in samples)
    return {f"pass@{k}": stat([float(any(equivalent(a, ref) for a in s[:k])) for s, ref in zip(samples, references)])
            for k in range(1, width + 1)}


def flow(answers: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent, turns: int) -> dict:
    correct = [[equivalent(a, ref) for a in ans] for ans, ref in zip(answers, references)]
    out = {"turn_accuracy": {f"t{k}": stat([float(c[k - 1]) for c in correct]) for k in range(1, turns + 1)}}
    for k in range(2, turns + 1):
        out[f"t{k - 1}->t{k}"] = {
            "wrong_to_right": stat([float(not c[k - 2] and c[k - 1]) for c in correct]),
            "right_to_wrong": stat([float(c[k - 2] and not c[k - 1]) for c in correct]),
            "answer_changed": stat([float(a[k - 2] != a[k - 1]) for a in answers]),
        }
    return out
