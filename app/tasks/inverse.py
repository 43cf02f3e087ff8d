"""Inverse word problems: the end of a chain of operations is given and its start is asked, so
checking an answer is easier than finding it.

    Sam has some apples. He ends up with 4 times as many. Then he buys 17 more. Now Sam has 93
    apples. How many apples did Sam have at the start?
    -> "93-17=76. 76/4=19. Check: 19*4=76. 76+17=93. 93 vs 93: match. The answer is 19."

Solving means inverting the chain: undo its operations from the last to the first (an addition
becomes a subtraction, a subtraction an addition, a product a division; every division is exact).
Checking a candidate start means running the chain forward, the arithmetic of the synthetic task
(`app/tasks/synthetic.py`) that base-synth was trained on: "Check: 18*4=72. 72+17=89. 89 vs 93: no
match." Products are by one digit at every level, so the forward check stays within
what base-synth does reliably (99% on hard problems), while the divisions of the solution are new to
it. The check writes its comparison out ("89 vs 93"): the verdict is then read off two
numbers written side by side, the check's last result and the question's end. A verdict written
straight after the chain ("... 72+17=89. It does not match 93.") was learned as a fixed ending: bases
trained on it said "It matches" for every wrong answer (docs/results/inverse-pilot.md).

A worked solution (`Problem.solution`) is the solver's inverse steps in the synthetic step format
(`a op b=c.`, with `/` for a division), then the forward check of its answer (`forward_check`),
then "The answer is N." The answer format is the synthetic task's, so the `synthetic` checker
scores it; `check_steps` and `minimal_correction` are this family's step check and exact solver
(the task registry dispatches on the problem's type).

Splits: a problem's split is the synthetic task's hash of its structure (start value and
operations, `synthetic.split_of`), so a structure held out by one family is held out by the other,
and train, validation and test never share one. Difficulty presets carry the synthetic level names.

    python -m app.tasks.inverse   # prints a few problems, a wrong attempt and its check
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from app.tasks.synthetic import ANSWER_RE, ITEMS, NAMES, PHRASES, SPLITS, Difficulty, Step, draw_of_split

STEP_RE = re.compile(r"(-?\d+)\s*([+\-*/])\s*(-?\d+)\s*=\s*(-?\d+)")
CHECK = "Check:"
COMPARISON_RE = re.compile(r"(-?\d+) vs (-?\d+):")  # the comparison `forward_check` writes before its verdict
INVERSE = {"+": "-", "-": "+", "*": "/"}

# Products by one digit at every level (the forward check is then base-synth's arithmetic); harder
# levels have longer chains, larger values and more products to undo.
LEVELS = {
    "easy": Difficulty(min_steps=1, max_steps=3, max_value=50, max_total=200, ops=("+", "-")),
    "medium": Difficulty(min_steps=2, max_steps=3, max_value=99, max_total=999, max_factor=5),
    "hard": Difficulty(min_steps=3, max_steps=5, max_value=99, max_total=9999, max_factor=9),
    "expert": Difficulty(min_steps=2, max_steps=4, max_value=99, max_total=9999, ops=("+", "-", "*", "*"),
                         max_factor=9),
}


@dataclass
class Problem:
    question: str
    start: int  # the answer
    ops: list[tuple[str, int]]  # the chain, forward
    end: int  # what the question states
    steps: list[Step] = field(default_factory=list)  # the inverse steps, from `end` back to `start`

    @property
    def answer(self) -> str:
        return str(self.start)

    @property
    def solution(self) -> str:
        """The worked solution: the inverse steps, the forward check of their result, the answer."""
        return write(self.steps, forward_check(self, self.start), self.start)


def forward(start: int, ops: list[tuple[str, int]]) -> list[Step]:
    """The chain run forward from `start` (a candidate's check)."""
    steps, value = [], start
    for op, k in ops:
        result = value + k if op == "+" else value - k if op == "-" else value * k
        steps.append(Step(value, op, k, result))
        value = result
    return steps


def solve(end: int, ops: list[tuple[str, int]]) -> list[Step]:
    """The exact inverse steps: the operations undone from the last to the first."""
    steps, value = [], end
    for op, k in reversed(ops):
        inverse = INVERSE[op]
        if inverse == "/" and value % k:
            raise ValueError(f"{value} is not a multiple of {k}: not the end of a chain with this product")
        result = value - k if inverse == "-" else value + k if inverse == "+" else value // k
        steps.append(Step(value, inverse, k, result))
        value = result
    return steps


def check(problem: Problem, candidate: int) -> bool:
    """The checker: does the chain, run forward from `candidate`, end where the question says?"""
    return forward(candidate, problem.ops)[-1].result == problem.end


def forward_check(problem: Problem, candidate: int) -> str:
    """The text of checking `candidate` by running the chain forward: its steps, the comparison of
    where it ends with where the question says it ends, and the verdict that comparison gives."""
    steps = forward(candidate, problem.ops)
    got = steps[-1].result
    verdict = "match" if got == problem.end else "no match"
    return f"{CHECK} " + " ".join(s.text() for s in steps) + f" {got} vs {problem.end}: {verdict}."


def write(steps: list[Step], checked: str, answer: int) -> str:
    return " ".join(s.text() for s in steps) + f" {checked} The answer is {answer}."


def parse(text: str) -> tuple[list[Step], list[Step]]:
    """(the solving steps, the check's steps) of a written solution."""
    solving, _, checking = text.partition(CHECK)
    solve_steps, check_steps_ = ([Step(int(a), op, int(b), int(c)) for a, op, b, c in STEP_RE.findall(part)]
                                 for part in (solving, checking))
    return solve_steps, check_steps_


def check_steps(problem: Problem, text: str) -> bool:
    """True when `text` carries out exactly the problem's inverse steps, each computed correctly, checks
    its result by the exact forward chain (when it writes a check) and states that result as the answer
    (rules out "lucky" right answers)."""
    solving, checking = parse(text)
    m = None
    for m in ANSWER_RE.finditer(text):
        pass
    right = m is not None and m.group(1).replace(",", "") == problem.answer
    return right and solving == problem.steps and (CHECK not in text or checking == forward(problem.start, problem.ops))


def minimal_correction(problem: Problem, text: str) -> str:
    """The exact solver's correction of an attempt: the attempt's right leading steps are the exact
    ones, so the corrected solution is the problem's worked solution whatever the attempt said."""
    return problem.solution


def corrupt(problem: Problem, rng: random.Random) -> str:
    """A plausible wrong attempt: one inverse step miscomputed, the error carried on (a later division
    rounds down), then the honest forward check of the wrong answer, which does not match."""
    while True:
        i = rng.randrange(len(problem.steps))
        value, steps = problem.end, []
        for j, s in enumerate(problem.steps):
            result = value - s.operand if s.op == "-" else value + s.operand if s.op == "+" else value // s.operand
            if j == i:
                result = max(0, result + rng.choice([-10, -2, -1, 1, 2, 10])) or result + 1
            steps.append(Step(value, s.op, s.operand, result))
            value = result
        if value != problem.start:  # else the slip cancelled out (a division rounded it away): again
            return write(steps, forward_check(problem, value), value)


def generate(rng: random.Random, difficulty: Difficulty = LEVELS["medium"], split: str = "train") -> Problem:
    """Draw one problem of `split` from `rng` (rejection sampling on the structure's split hash)."""
    return draw_of_split(_draw, rng, difficulty, split)


def problems(seed: int, count: int, difficulty: Difficulty = LEVELS["medium"], split: str = "test") -> list[Problem]:
    """A reproducible list of `count` problems (the held-out test split by default)."""
    rng = random.Random(seed)
    return [generate(rng, difficulty, split) for _ in range(count)]


def _draw(rng: random.Random, d: Difficulty) -> Problem:
    name, pron = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    value = start = rng.randint(1, d.max_value)
    ops: list[tuple[str, int]] = []
    for _ in range(rng.randint(d.min_steps, d.max_steps)):
        choices = [op for op in d.ops if _allowed(op, value, d)]
        op = rng.choice(choices)
        if op == "+":
            k = rng.randint(1, min(d.max_value, d.max_total - value))
        elif op == "-":
            k = rng.randint(1, min(d.max_value, value - 1))  # never down to 0: a product of 0 cannot be undone
        else:
            k = rng.randint(d.min_factor, min(d.max_factor, d.max_total // value))
        ops.append((op, k))
        value = forward(value, [(op, k)])[0].result
    sentences = [f"{name} has some {item}."]
    for n, (op, k) in enumerate(ops):
        sentences.append(rng.choice(PHRASES[op]).format(p=pron if n == 0 else f"Then {pron.lower()}", k=k))
    sentences.append(f"Now {name} has {value} {item}. How many {item} did {name} have at the start?")
    return Problem(" ".join(sentences), start, ops, value, solve(value, ops))


def _allowed(op: str, value: int, d: Difficulty) -> bool:
    if op == "+":
        return value < d.max_total
    if op == "-":
        return value > 1
    return d.min_factor * value <= d.max_total and d.max_factor >= d.min_factor


if __name__ == "__main__":
    for p in problems(0, 4, LEVELS["hard"], "train"):
        print(p.question, "\n  solution:", p.solution, "\n  a wrong attempt:", corrupt(p, random.Random(0)))
