"""Synthetic multi-step arithmetic word problems with an exact solver.

    Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?
    -> "23+17=40. 40-9=31. The answer is 31."

Problems are seeded and reproducible; difficulty is set by `Difficulty` (number of steps, number
range, operations). The train, validation and test splits never share a problem's *structure*
(its start value and operations): the split is decided by a hash of the structure, not of the
wording, so the same arithmetic under another name cannot land on both sides, and `generate`
rejects problems of the other splits. Settings are chosen on `validation`; cards report `test`.

The solver also checks worked solutions step by step (`check_steps`) and writes the minimal
correction of a wrong attempt (`minimal_correction`), used by RISE's distillation source.

    python -m app.tasks.synthetic   # prints a few problems
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

NAMES = [("Sam", "He"), ("Mia", "She"), ("Leo", "He"), ("Ana", "She"), ("Tom", "He"),
         ("Eva", "She"), ("Max", "He"), ("Zoe", "She"), ("Ben", "He"), ("Ivy", "She")]
ITEMS = ["apples", "pens", "coins", "cards", "books", "stamps", "shells", "marbles", "cookies",
         "stickers"]
PHRASES = {
    "+": ["{p} buys {k} more.", "{p} finds {k} more.", "{p} gets {k} more from a friend."],
    "-": ["{p} gives away {k}.", "{p} sells {k}.", "{p} loses {k}."],
    "*": ["{p} ends up with {k} times as many."],
}
HELD_OUT_BUCKETS = 10  # of ten hash buckets, one is the test split and one the validation split
SPLITS = ("train", "validation", "test")

STEP_RE = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)\s*=\s*(-?\d+)")
ANSWER_RE = re.compile(r"[Tt]he answer is\s*(-?[\d,]+)")


@dataclass(frozen=True)
class Difficulty:
    """What makes a problem hard: how many operations, how large the numbers, which operations."""

    min_steps: int = 2
    max_steps: int = 4
    max_value: int = 99  # start value and +/- operands are drawn from 1..max_value
    max_total: int = 999  # no intermediate result exceeds this
    ops: tuple[str, ...] = ("+", "-", "*")  # repeat an operation to draw it more often
    max_factor: int = 4
    min_factor: int = 2


# Named difficulty presets. The base model trains on all of them; "medium" is the default
# evaluation set (its turn-1 accuracy leaves room for refinement to show).
LEVELS = {
    "easy": Difficulty(min_steps=1, max_steps=3, max_value=50, max_total=200, max_factor=3),
    "medium": Difficulty(min_steps=2, max_steps=4, max_value=99, max_total=999, max_factor=4),
    "hard": Difficulty(min_steps=3, max_steps=6, max_value=999, max_total=9999, max_factor=9),
    # two-digit by two-digit products in one step: hard for a few-million-parameter model, so
    # turn 1 is often wrong and refinement has something to fix
    "expert": Difficulty(min_steps=2, max_steps=3, max_value=99, max_total=9999, ops=("+", "-", "*", "*"),
                         max_factor=99, min_factor=11),
}


@dataclass(frozen=True)
class Step:
    left: int
    op: str
    operand: int
    result: int

    def text(self) -> str:
        return f"{self.left}{self.op}{self.operand}={self.result}."


@dataclass
class Problem:
    question: str
    start: int
    ops: list[tuple[str, int]]
    steps: list[Step] = field(default_factory=list)

    @property
    def answer(self) -> str:
        return str(self.steps[-1].result)

    @property
    def solution(self) -> str:
        return format_solution(self.steps)


def structure(start: int, ops: list[tuple[str, int]]) -> str:
    """What a problem computes, without its wording: '23+17-9' for 'Sam has 23 … buys 17 … gives 9'."""
    return str(start) + "".join(f"{op}{k}" for op, k in ops)


def split_of(problem: "Problem") -> str:
    """'test', 'validation' or 'train': a stable hash of the problem's structure (not its text)."""
    bucket = hashlib.sha256(structure(problem.start, problem.ops).encode()).digest()[0] % HELD_OUT_BUCKETS
    return "test" if bucket == 0 else "validation" if bucket == 1 else "train"


def split_of_text(question: str) -> str:
    """The split rule of models trained before the structure split (a hash of the wording): kept to
    measure how much of today's test set those models' training could have seen."""
    digest = hashlib.sha256(question.encode()).digest()
    return "test" if digest[0] % HELD_OUT_BUCKETS == 0 else "train"


def generate(rng: random.Random, difficulty: Difficulty = Difficulty(), split: str = "train") -> Problem:
    """Draw one problem of `split` from `rng` (rejection sampling on the split hash)."""
    return draw_of_split(_draw, rng, difficulty, split)


def draw_of_split(draw, rng: random.Random, difficulty, split: str):
    """`draw(rng, difficulty)` until the problem's structure falls in `split` (this family's and the
    inverse family's generators: one split rule for both)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    while True:
        problem = draw(rng, difficulty)
        if split_of(problem) == split:
            return problem


def problems(seed: int, count: int, difficulty: Difficulty = Difficulty(), split: str = "test") -> list[Problem]:
    """A reproducible list of `count` problems (the held-out evaluation set by default)."""
    rng = random.Random(seed)
    return [generate(rng, difficulty, split) for _ in range(count)]


def solve(start: int, ops: list[tuple[str, int]]) -> list[Step]:
    steps, value = [], start
    for op, k in ops:
        result = apply_op(value, op, k)
        steps.append(Step(value, op, k, result))
        value = result
    return steps


def format_solution(steps: list[Step]) -> str:
    return " ".join(s.text() for s in steps) + f" The answer is {steps[-1].result}."


def parse_steps(text: str) -> list[Step]:
    return [Step(int(a), op, int(b), int(c)) for a, op, b, c in STEP_RE.findall(text)]


def check_steps(problem: Problem, text: str) -> bool:
    """True when `text` carries out exactly the problem's steps, each computed correctly,
    and states their result as the answer (rules out 'lucky' right answers)."""
    steps = parse_steps(text)
    m = ANSWER_RE.search(text)
    return steps == problem.steps and m is not None and m.group(1).replace(",", "") == problem.answer


def minimal_correction(problem: Problem, text: str) -> str:
    """Keep the attempt's correct leading steps, fix the first wrong one, recompute the rest."""
    attempt = parse_steps(text)
    keep = 0
    while keep < min(len(attempt), len(problem.steps)) and attempt[keep] == problem.steps[keep]:
        keep += 1
    # The kept steps equal the exact ones, so the corrected chain is the exact chain; written out
    # from the kept prefix so that the wording of the correct part is the attempt's own.
    return format_solution(attempt[:keep] + problem.steps[keep:])


def corrupt(problem: Problem, rng: random.Random) -> str:
    """A plausible wrong attempt: one step miscomputed (or an operand misread), errors propagated."""
    i = rng.randrange(len(problem.steps))
    value = problem.start
    steps: list[Step] = []
    for j, (op, k) in enumerate(problem.ops):
        if j == i and rng.random() < 0.25 and op != "*":
            k = max(1, k + rng.choice([-10, -1, 1, 10]))  # misread operand
        result = apply_op(value, op, k)
        if j == i and k == problem.ops[j][1]:
            result = _perturb(result, rng)
        steps.append(Step(value, op, k, result))
        value = result
    if steps[-1].result == problem.steps[-1].result:  # the error cancelled out: try again
        return corrupt(problem, rng)
    return format_solution(steps)


def _perturb(value: int, rng: random.Random) -> int:
    for _ in range(10):
        delta = rng.choice([-10, -2, -1, 1, 2, 10, 100, -100])
        if value + delta >= 0 and delta != 0:
            return value + delta
    return value + 1


def apply_op(value: int, op: str, k: int) -> int:
    return value + k if op == "+" else value - k if op == "-" else value * k


def _draw(rng: random.Random, d: Difficulty) -> Problem:
    name, pron = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    value = rng.randint(1, d.max_value)
    start, ops = value, []
    for _ in range(rng.randint(d.min_steps, d.max_steps)):
        choices = [op for op in d.ops if _allowed(op, value, d)]
        op = rng.choice(choices)
        if op == "+":
            k = rng.randint(1, min(d.max_value, d.max_total - value))
        elif op == "-":
            k = rng.randint(1, min(d.max_value, value))
        else:
            k = rng.randint(d.min_factor, min(d.max_factor, d.max_total // value))
        ops.append((op, k))
        value = apply_op(value, op, k)
    sentences = [f"{name} has {start} {item}."]
    for n, (op, k) in enumerate(ops):
        phrase = rng.choice(PHRASES[op]).format(p=pron if n == 0 else f"Then {pron.lower()}", k=k)
        sentences.append(phrase)
    sentences.append(f"How many {item} does {name} have now?")
    return Problem(" ".join(sentences), start, ops, solve(start, ops))


def _allowed(op: str, value: int, d: Difficulty) -> bool:
    if op == "+":
        return value < d.max_total
    if op == "-":
        return value > 0
    return 0 < value and d.min_factor * value <= d.max_total and d.max_factor >= d.min_factor


if __name__ == "__main__":
    for p in problems(0, 5):
        print(p.question, "->", p.solution)
