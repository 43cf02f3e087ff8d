"""The paper's metrics, computed from per-problem records of what each turn answered.

- p1@tk: oracle feedback, stop at the first correct turn; solved if any turn <= k is correct.
  The oracle run repeats the no-oracle run's turns (same seeds, same feedback text) up to its first
  correct turn, so p1@tk is also "any correct among the no-oracle run's turns 1..k" (`p1_from_self`).
- m1@tk: no oracle, RISE's feedback every turn; majority vote over the answers of turns 1..k
  (tie rule `first`: the earliest-appearing of the tied answers wins; `last` is reported too).
- m5@t1: majority over 5 independent first-turn samples (the parallel baseline).
- pass@k: solved if any of k independent first-turn samples is correct.
- flow: between turns k-1 and k of the no-oracle run, the share of problems going wrong->right
  and right->wrong, and the accuracy of turn k's own answer.
- tokens: what each method costs per problem (prompt + completion tokens, and completion alone).

Each `*_vectors` function gives one 0/1 value per problem (kept per seed for paired statistics,
`app/evaluation/paired.py`); the plain functions wrap them in `stat` (mean, standard error
sqrt(p(1-p)/n), n).

    .venv/bin/python -m pytest -q tests/evaluation/test_metrics.py
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from app.refine.vote import majority

Equivalent = Callable[[str, str], bool]
Vectors = dict[str, list[float]]


def stat(values: Sequence[float]) -> dict:
    n = len(values)
    p = sum(values) / n if n else 0.0
    return {"mean": round(p, 4), "se": round(math.sqrt(p * (1 - p) / n), 4) if n else None, "n": n}


def stats(vectors: Vectors) -> dict[str, dict]:
    return {k: stat(v) for k, v in vectors.items()}


# --- per-problem vectors -------------------------------------------------------------------------

def correctness(answers: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent) -> list[list[bool]]:
    """Whether each turn's (or sample's) answer is equivalent to the problem's reference."""
    return [[a is not None and bool(equivalent(a, ref)) for a in ans] for ans, ref in zip(answers, references)]


def p1_vectors(correct: Sequence[Sequence[bool]], turns: int) -> Vectors:
    """correct[i]: correctness of problem i's turns in order (an oracle run stops at the first True;
    a no-oracle run's full list gives the same values: `p1_from_self`)."""
    return {f"p1@t{k}": [float(any(c[:k])) for c in correct] for k in range(1, turns + 1)}


def m1_vectors(answers: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent,
               turns: int, tie_break: str = "first") -> Vectors:
    out = {}
    for k in range(1, turns + 1):
        out[f"m1@t{k}"] = [float(_hit(majority(ans[:k], equivalent, tie_break)[0], ref, equivalent))
                           for ans, ref in zip(answers, references)]
    return out


def m_at_t1_vector(samples: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent,
                   m: int = 5) -> Vectors:
    return {f"m{m}@t1": [float(_hit(majority(s[:m], equivalent)[0], ref, equivalent)) for s, ref in zip(samples, references)]}


def pass_vectors(samples: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent) -> Vectors:
    width = min(len(s) for s in samples)
    return {f"pass@{k}": [float(any(_hit(a, ref, equivalent) for a in s[:k])) for s, ref in zip(samples, references)]
            for k in range(1, width + 1)}


def flow_vectors(answers: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent,
                 turns: int) -> Vectors:
    """Flat keys `turn_accuracy/tk` and `t{k-1}->tk/{wrong_to_right,right_to_wrong,answer_changed}`."""
    correct = correctness(answers, references, equivalent)
    out = {f"turn_accuracy/t{k}": [float(c[k - 1]) for c in correct] for k in range(1, turns + 1)}
    for k in range(2, turns + 1):
        step = f"t{k - 1}->t{k}"
        out[f"{step}/wrong_to_right"] = [float(not c[k - 2] and c[k - 1]) for c in correct]
        out[f"{step}/right_to_wrong"] = [float(c[k - 2] and not c[k - 1]) for c in correct]
        out[f"{step}/answer_changed"] = [float(a[k - 2] != a[k - 1]) for a in answers]
    return out


def nest_flow(flat: dict[str, dict]) -> dict:
    """`flow_vectors`' flat keys (with any value) as {"turn_accuracy": {"t1": …}, "t1->t2": {…}}."""
    out: dict = {}
    for key, value in flat.items():
        group, name = key.split("/", 1)
        out.setdefault(group, {})[name] = value
    return out


# --- the stat-wrapped forms (one seed) -----------------------------------------------------------

def p1_at(oracle_correct: Sequence[Sequence[bool]], turns: int) -> dict[str, dict]:
    """oracle_correct[i] = correctness of problem i's turns, in order (the run stops at the first True)."""
    return stats(p1_vectors(oracle_correct, turns))


def m1_at(answers: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent,
          turns: int, tie_break: str = "first") -> dict[str, dict]:
    return stats(m1_vectors(answers, references, equivalent, turns, tie_break))


def m_at_t1(samples: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent, m: int = 5) -> dict:
    return stats(m_at_t1_vector(samples, references, equivalent, m))


def pass_at(samples: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent) -> dict:
    return stats(pass_vectors(samples, references, equivalent))


def flow(answers: Sequence[Sequence[str | None]], references: Sequence[str], equivalent: Equivalent, turns: int) -> dict:
    return nest_flow(stats(flow_vectors(answers, references, equivalent, turns)))


# --- cost ----------------------------------------------------------------------------------------

def token_costs(turn_tokens: Sequence[Sequence[tuple[int, int]]], correct: Sequence[Sequence[bool]],
                sample_tokens: Sequence[Sequence[tuple[int, int]]], turns: int, m: int = 5) -> dict[str, dict]:
    """Mean tokens per problem of each method: {"p1@tk" | "m1@tk" | "m{m}@t1": {total, completion, prompt}}.

    turn_tokens[i][j]: (prompt, completion) tokens of the no-oracle run's turn j+1 on problem i;
    m1@tk runs turns 1..k; p1@tk runs turns up to the first correct one (the oracle stops there),
    at most k; m{m}@t1 runs m parallel first-turn samples (sample_tokens[i][j]: sample j+1).
    A prompt is counted once per sample, as each engine reports it (an engine that shares a prompt's
    KV cache across parallel samples computes it once: completion tokens are the like-for-like cost).
    """
    out = {}
    for k in range(1, turns + 1):
        out[f"p1@t{k}"] = _mean_cost([t[:min(k, _first_true(c))] for t, c in zip(turn_tokens, correct)])
    for k in range(1, turns + 1):
        out[f"m1@t{k}"] = _mean_cost([t[:k] for t in turn_tokens])
    out[f"m{m}@t1"] = _mean_cost([s[:m] for s in sample_tokens])
    return out


def _mean_cost(runs: Sequence[Sequence[tuple[int, int]]]) -> dict:
    n = max(len(runs), 1)
    prompt = sum(p for r in runs for p, _ in r) / n
    completion = sum(c for r in runs for _, c in r) / n
    return {"total": round(prompt + completion, 2), "completion": round(completion, 2), "prompt": round(prompt, 2)}


def _first_true(flags: Sequence[bool]) -> int:
    """1-based index of the first True (the turn where an oracle stops), else len(flags)."""
    return next((j + 1 for j, f in enumerate(flags) if f), len(flags))


def _hit(answer: str | None, reference: str, equivalent: Equivalent) -> bool:
    return bool(equivalent(answer, reference))
