"""The re-check turn of the synthetic task: verify the previous attempt step by step, then answer.

A first turn is the short solution ("47*38=1786. 1786-25=1761. The answer is 1761."). Told it is
wrong, the model re-checks: it recomputes every step with arithmetic it does reliably, splitting
each product by a two-digit number into a tens product and a one-digit product, in one expression
so that each part is computed right beside its operands:

    47*38=470*3+47*8=1410+376=1786. 1786-25=1761. The answer is 1761.

A right attempt is re-checked the same way and keeps its answer; a wrong one comes out fixed from
its first wrong step on. (A first version wrote the parts on lines of their own, "47*8=376.
470*3=1410. 1410+376=1786."; the 4.9M model learned the parts but, after "1410+", copied an operand
from the question, as every first-turn step does: see docs/results.) The exact solver writes these turns for training (`recheck`); the model learns
to write them itself (`rise train rise --source recheck`).

    python -m app.tasks.recheck   # prints a wrong attempt and its re-check
"""

from __future__ import annotations

import random

from app.tasks.synthetic import Problem, Step, apply_op


def recheck(problem: Problem) -> str:
    """The re-check turn after any attempt, right or wrong: the problem's exact steps, products split
    (what it checks the attempt against, so it is the same whatever the attempt said)."""
    return " ".join(_checked(step) for step in problem.steps) + f" The answer is {problem.answer}."


def corrupt_recheck(problem: Problem, rng: random.Random) -> str:
    """A re-check turn with one partial product miscomputed and the error carried on (what a model's
    own wrong re-check looks like), for training the turn after a wrong re-check."""
    products = [i for i, s in enumerate(problem.steps) if s.op == "*" and s.operand >= 10]
    if not products:
        return recheck(problem)
    target = rng.choice(products)
    value, parts = problem.start, []
    for i, (op, k) in enumerate(problem.ops):
        if i == target:
            text, value = _checked_wrong(value, k, rng)
            parts.append(text)
            continue
        result = apply_op(value, op, k)
        parts.append(_checked(Step(value, op, k, result)))
        value = result
    return " ".join(parts) + f" The answer is {value}."


def _checked(step: Step) -> str:
    if step.op != "*" or step.operand < 10:
        return f"{step.left}{step.op}{step.operand}={step.result}."
    tens, units = divmod(step.operand, 10)
    big = step.left * 10 * tens
    if units == 0:
        return f"{step.left}*{step.operand}={step.left * 10}*{tens}={big}."
    small = step.left * units
    return f"{step.left}*{step.operand}={step.left * 10}*{tens}+{step.left}*{units}={big}+{small}={big + small}."


def _checked_wrong(left: int, k: int, rng: random.Random) -> tuple[str, int]:
    tens, units = divmod(k, 10)
    small, big = left * units, left * 10 * tens
    which = rng.choice(["small", "big", "sum"] if units else ["big"])
    delta = rng.choice([-100, -10, -1, 1, 10, 100])
    if which == "small" and small + delta >= 0:
        small_w, big_w, total = small + delta, big, None
    elif which == "big" and big + delta >= 0:
        small_w, big_w, total = small, big + delta, None
    else:
        small_w, big_w, total = small, big, max(0, big + small + delta)
    total = big_w + small_w if total is None else total
    if total == big + small:
        total += 10
    if units == 0:
        return f"{left}*{k}={left * 10}*{tens}={total}.", total
    return f"{left}*{k}={left * 10}*{tens}+{left}*{units}={big_w}+{small_w}={total}.", total


if __name__ == "__main__":
    from app.tasks.synthetic import LEVELS, corrupt, problems

    for p in problems(0, 3, LEVELS["expert"], "train"):
        wrong = corrupt(p, random.Random(0))
        print(p.question, "\n  attempt:", wrong, "\n  recheck:", recheck(p),
              "\n  a wrong recheck:", corrupt_recheck(p, random.Random(1)))
