"""The re-check turn of the synthetic task: verify the previous attempt step by step, then answer.

A first turn is the short solution ("47*38=1786. 1786-25=1761. The answer is 1761."). Told it is
wrong, the model re-checks: it recomputes every step with arithmetic it does reliably. A product by
a two-digit number, the only step the 4.9M model often gets wrong, becomes three steps of the kinds
the base model was trained on (a number times one digit, then a sum), each result written right
after its operands:

    470*3=1410. 47*8=376. 1410+376=1786. 1786-25=1761. The answer is 1761.

A right attempt is re-checked the same way and keeps its answer; a wrong one comes out fixed from
its first wrong step on. The exact solver writes these turns for training (`recheck`); the model
learns to write them itself (`rise train rise --source recheck`).

Formats tried (docs/results/README.md): separate lines with the sum last ("47*8=376. 470*3=1410.
1410+376=1786.", 186 steps: after "1410+" the model copied an operand from the question), then one
expression ("47*38=470*3+47*8=1410+376=1786.", 186 steps: the parts were computed far from their
operands and came out wrong, and the wrong parts took turn 1 down with them). This one keeps each
result beside its operands and trains far longer (bf16 on the CPU, thousands of solver-written
conversations).

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
    """A re-check turn with one partial product miscomputed and the error carried on, or (a third of
    the time when the last step is the product) cut short after its tens part: what a model's own
    wrong re-checks look like, for training the turn after a wrong re-check."""
    products = [i for i, s in enumerate(problem.steps) if s.op == "*" and s.operand >= 10]
    if not products:
        return recheck(problem)
    target = rng.choice(products)
    value, parts = problem.start, []
    for i, (op, k) in enumerate(problem.ops):
        if i == target == len(problem.ops) - 1 and k % 10 and rng.random() < 1 / 3:
            # stopped after the tens part, as if it were a product by a round number (a slip models make)
            big = value * 10 * (k // 10)
            parts.append(f"{value * 10}*{k // 10}={big}.")
            value = big
            break
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
    return _split(step.left, step.operand, *_parts(step.left, step.operand))


def _parts(left: int, k: int) -> tuple[int, int, int]:
    """(tens part, units part, sum) of left*k: 47*38 -> (470*3, 47*8, their sum)."""
    tens, units = divmod(k, 10)
    big, small = left * 10 * tens, left * units
    return big, small, big + small


def _split(left: int, k: int, big: int, small: int, total: int) -> str:
    tens, units = divmod(k, 10)
    if units == 0:
        return f"{left * 10}*{tens}={total}."
    return f"{left * 10}*{tens}={big}. {left}*{units}={small}. {big}+{small}={total}."


def _checked_wrong(left: int, k: int, rng: random.Random) -> tuple[str, int]:
    big, small, total = _parts(left, k)
    which = rng.choice(["small", "big", "sum"] if k % 10 else ["big"])
    delta = rng.choice([-100, -10, -1, 1, 10, 100])
    if which == "small" and small + delta >= 0:
        small += delta
    elif which == "big" and big + delta >= 0:
        big += delta
    else:
        total = max(0, total + delta)
        if total == big + small:
            total += 10
        return _split(left, k, big, small, total), total
    total = big if k % 10 == 0 else big + small
    return _split(left, k, big, small, total), total


if __name__ == "__main__":
    from app.tasks.synthetic import LEVELS, corrupt, problems

    for p in problems(0, 3, LEVELS["expert"], "train"):
        wrong = corrupt(p, random.Random(0))
        print(p.question, "\n  attempt:", wrong, "\n  recheck:", recheck(p),
              "\n  a wrong recheck:", corrupt_recheck(p, random.Random(1)))
