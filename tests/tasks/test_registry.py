"""The task registry: one list of tasks that serving, evaluation and training read, each with the
rule that reads a dataset's answers (a field another task's format is a mismatch, not a silent zero).

    .venv/bin/python -m pytest -q tests/tasks/test_registry.py
"""

import random
import typing

import pytest

from app.answers.checker import FAMILIES
from app.api.protocol_refine import RefineOptions
from app.config import Settings
from app.tasks import datasets, files, synthetic
from app.tasks.registry import NAMES, as_task, get_task


def test_serving_evaluation_and_training_name_the_same_tasks():
    assert NAMES == FAMILIES == ("synthetic", "gsm8k", "math")
    assert typing.get_args(Settings.model_fields["task"].annotation) == NAMES  # RISE_TASK
    request_task = RefineOptions.model_fields["task"].annotation  # a request's `task`
    assert typing.get_args(typing.get_args(request_task)[0]) == NAMES
    assert set(datasets.FAMILY.values()) <= set(NAMES)  # rise eval's datasets
    assert {files.builtin_task(n) for n in ("synthetic", *files.BUILTIN)} <= set(NAMES)  # rise train rise's
    assert as_task(get_task("gsm8k").checker) is get_task("gsm8k")
    with pytest.raises(ValueError, match="unknown task 'chess'"):
        get_task("chess")


@pytest.mark.parametrize("task,raw,reference", [
    ("synthetic", "1,234", "1234"), ("synthetic", 72, "72"), ("synthetic", "#### 72", None), ("synthetic", "7.5", None),
    ("gsm8k", "She sold 48/2 = <<48/2=24>>24.\n#### 1,072", "1072"), ("gsm8k", "72", "72"), ("gsm8k", "seventy", None),
    ("gsm8k", "", None), ("gsm8k", None, None), ("gsm8k", True, None),
    ("math", "\\frac{14}{3}", "\\frac{14}{3}"), ("math", "so \\boxed{3}.", "3"), ("math", "p - q", "p - q"),
    ("math", "... #### 72", None), ("math", "the answer is some words here", None),
])
def test_each_task_reads_its_own_answers_only(task, raw, reference):
    assert get_task(task).reference(raw) == reference


def test_step_check_and_solver_apply_to_the_tasks_own_problems_only():
    task = get_task("synthetic")
    p = synthetic.problems(3, 1, synthetic.LEVELS["expert"], "train")[0]
    lucky = " ".join(f"{s.left}{s.op}{s.operand}={s.result + 1}." for s in p.steps) + f" The answer is {p.answer}."
    assert task.checker.is_correct(lucky, p.answer) and not task.steps_ok(p, lucky)  # right answer, wrong steps
    assert task.steps_ok(p, p.solution) and task.solve(p, synthetic.corrupt(p, random.Random(0))) == p.solution
    row = files.Question(p.question, p.answer)  # a file's row: no steps to check, nothing to solve
    assert task.steps_ok(row, lucky) and task.solve(row, lucky) is None
    assert task.has_solver and not get_task("gsm8k").has_solver and get_task("gsm8k").solve(p, lucky) is None
