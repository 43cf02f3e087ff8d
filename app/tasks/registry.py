"""The task registry: what each answer format (`RISE_TASK`, a request's `task`, `rise train rise
--task`) is, in one place that serving, evaluation and training read.

A task is an answer format with its checker (`app/answers/checker.py`: the same object the server
scores with), the rule that reads a dataset's answer field as a reference (a field this task cannot
read is a mismatch, refused with a message), and what only some tasks have: a step check (the
synthetic task can tell a right answer reached by wrong steps) and an exact solver (it writes the
minimal correction of an attempt). Both apply only to the task's own generated problems; a row of a
file has no steps to check. The synthetic task's generated problems come in two families with its
answer format: forward chains (`app/tasks/synthetic.py`) and inverse ones (`app/tasks/inverse.py`,
the `inverse` dataset); its step check and solver dispatch on the problem's family.

    from app.tasks.registry import get_task
    get_task("gsm8k").reference("Natalia sold ... #### 72")   # '72'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from app.answers.checker import FAMILIES, AnswerChecker, get_checker, parse_answer
from app.tasks import inverse, synthetic

_INTEGER = re.compile(r"-?\d[\d,]*")


@dataclass(frozen=True)
class Task:
    """One answer format. `reads` says what a reference of this task looks like (for messages)."""

    name: str
    reads: str
    _reference: Callable[[str], str | None]
    _check_steps: Callable[[object, str], bool] | None = None
    _solver: Callable[[object, str], str] | None = None
    recipe: str | None = None  # the task's own training recipe (`--recipe`): app/training/<name>_recipe.py

    @property
    def checker(self) -> AnswerChecker:
        return get_checker(self.name)

    @property
    def has_solver(self) -> bool:
        return self._solver is not None

    def reference(self, raw: object) -> str | None:
        """The reference answer in a dataset's answer field (a worked solution or a bare answer), or
        None when this task cannot read it."""
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            return None
        text = str(raw).strip()
        return self._reference(text) if text else None

    def steps_ok(self, problem: object, text: str) -> bool:
        """False only when the task can check `problem`'s steps and `text` gets one wrong (a "lucky"
        right answer); True where there are no steps to check."""
        return self._check_steps is None or self._check_steps(problem, text)

    def solve(self, problem: object, attempt: str) -> str | None:
        """The exact solver's minimal correction of `attempt`, or None when this task has no solver or
        `problem` is not one of its own."""
        return self._solver(problem, attempt) if self._solver is not None else None


def _synthetic_reference(text: str) -> str | None:
    return text.replace(",", "") if _INTEGER.fullmatch(text) else None


def _gsm8k_reference(text: str) -> str | None:
    gold = get_checker("gsm8k").gold(text) if "####" in text else text
    parsed = parse_answer(gold) if gold else ()
    return gold if parsed and getattr(parsed[0], "is_number", False) else None


def _math_reference(text: str) -> str | None:
    if "####" in text or (len(text.split()) > 3 and not re.search(r"[\d\\]", text)):
        return None  # a GSM8K solution (the math checker reads LaTeX answers only), or prose
    gold = get_checker("math").gold(text) if "\\boxed" in text else text
    return gold if gold and parse_answer(gold) else None


def _family(problem: object):
    """The generator module of a generated problem (forward or inverse), None for a file's row."""
    return synthetic if isinstance(problem, synthetic.Problem) else inverse if isinstance(problem, inverse.Problem) \
        else None


def _synthetic_steps(problem: object, text: str) -> bool:
    """The step check of a generated problem (a file's row has no steps to check)."""
    family = _family(problem)
    return family.check_steps(problem, text) if family else True


def _synthetic_solver(problem: object, attempt: str) -> str | None:
    family = _family(problem)
    return family.minimal_correction(problem, attempt) if family else None


TASKS: dict[str, Task] = {
    "synthetic": Task("synthetic", "an integer, as in 'The answer is 31.'", _synthetic_reference,
                      _synthetic_steps, _synthetic_solver, recipe="synthetic"),
    "gsm8k": Task("gsm8k", "a number, or a worked solution ending in '#### N'", _gsm8k_reference),
    "math": Task("math", "a LaTeX answer (as inside \\boxed{}), or a solution with a \\boxed{} answer", _math_reference),
}
assert tuple(TASKS) == FAMILIES, "every checker family is a task, and only those"
NAMES = tuple(TASKS)


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None


def as_task(task_or_checker) -> Task:
    """A Task, given one or a checker of its family (what older callers pass)."""
    if isinstance(task_or_checker, Task):
        return task_or_checker
    return get_task(getattr(task_or_checker, "family", "synthetic"))
