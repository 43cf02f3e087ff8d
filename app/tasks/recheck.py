"""The re-check turn of the synthetic task: verify the previous attempt step by step, then answer.

A first turn is the short solution ("47*38=1786. 1786-25=1761. The answer is 1761."). Told it is
wrong, the model re-checks: it recomputes every step with arithmetic it does reliably, splitting
each product by a two-digit number into a one-digit product and a tens product, and marks a step of
the previous attempt it found wrong:

    47*38: 47*8=376. 470*3=1410. 1410+376=1786 (not 1686). 1786-25=1761. The answer is 1761.

All steps are in the `a op b = c` form the solver parses; a right attempt is re-checked the same way
and keeps its answer. The exact solver writes these turns for training (`recheck`); the model learns
to write them itself (`rise train rise --source recheck`).

    python -m app.tasks.recheck   # prints a wrong attempt and its re-check
"""

from __future__ import annotations

import random

from app.tasks.synthetic import Problem, Step, parse_steps


def recheck(problem: Problem, attempt: str | None = None) -> str:
    """The re-check turn after `attempt`: the problem's exact steps, products split, and the first
    wrong step of the attempt marked with the value the attempt gave."""
    previous = parse_steps(attempt or "")
    parts = []
    for i, step in enumerate(problem.steps):
        seen = previous[i] if i < len(previous) else None
        wrong = seen is not None and (seen.left, seen.op, seen.operand) == (step.left, step.op, step.operand) \
            and seen.result != step.result
        parts.append(_checked(step, seen.result if wrong else None))
    return " ".join(parts) + f" The answer is {problem.answer}."


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
        result = value + k if op == "+" else value - k if op == "-" else value * k
        parts.append(_checked(Step(value, op, k, result), None))
        value = result
    return " ".join(parts) + f" The answer is {value}."


def _checked(step: Step, was: int | None) -> str:
    note = f" (not {was})" if was is not None else ""
    if step.op != "*" or step.operand < 10:
        return f"{step.left}{step.op}{step.operand}={step.result}{note}."
    tens, units = divmod(step.operand, 10)
    head = f"{step.left}*{step.operand}:"
    big = step.left * 10 * tens
    if units == 0:
        return f"{head} {step.left * 10}*{tens}={big}{note}."
    small = step.left * units
    return f"{head} {step.left}*{units}={small}. {step.left * 10}*{tens}={big}. {big}+{small}={big + small}{note}."


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
    head = f"{left}*{k}:"
    if units == 0:
        return f"{head} {left * 10}*{tens}={total}.", total
    return f"{head} {left}*{units}={small_w}. {left * 10}*{tens}={big_w}. {big_w}+{small_w}={total}.", total


if __name__ == "__main__":
    from app.tasks.synthetic import LEVELS, corrupt, problems

    for p in problems(0, 3, LEVELS["expert"], "train"):
        wrong = corrupt(p, random.Random(0))
        print(p.question, "\n  attempt:", wrong, "\n  recheck:", recheck(p, wrong),
              "\n  a wrong recheck:", corrupt_recheck(p, random.Random(1)))
