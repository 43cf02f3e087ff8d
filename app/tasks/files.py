"""Question files for training and evaluation: GSM8K- or MATH-style JSON lines, the built-in
benchmark files (`RISE_DATA_DIR`) or a user's own, read under a task (`app/tasks/registry.py`).

Every row is checked as it is read, so that a bad file is refused with its line before any model
loads: a line that is not a JSON object, a missing or empty question or answer field (the message
lists the fields the row has), an answer the task cannot read (the message names a task that can,
when one does: GSM8K's `#### 72` under the synthetic task is a mismatch, not an empty score), an
empty file.

    rise train rise --dataset jsonl:data/train.jsonl --task gsm8k --question-field question --answer-field answer ...
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from app.tasks import datasets
from app.tasks.registry import TASKS, Task

# name: (file under RISE_DATA_DIR, question field, answer field, worked-solution field, task)
BUILTIN = {"gsm8k": ("gsm8k/train.jsonl", "question", "answer", "answer", "gsm8k"),
           "math500": ("math500/test.jsonl", "problem", "answer", "solution", "math")}
SPECS = ("synthetic", "inverse", *BUILTIN, "jsonl:PATH")
GENERATED = ("synthetic", "inverse")  # the synthetic task's generated families (app/tasks/datasets.py)


class DatasetError(ValueError):
    """A dataset that cannot be trained or evaluated on: the message says where and why."""


@dataclass(frozen=True)
class Question:
    """A question with its reference answer (`answer`, as a generated problem names it) and, when the
    row has one, a worked solution (replay trains on it)."""

    question: str
    answer: str
    solution: str | None = None


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """('synthetic' | 'inverse' | 'gsm8k' | 'math500' | 'jsonl', the file or None) of a `--dataset` value."""
    if spec in (*GENERATED, *BUILTIN):
        return spec, None
    if spec.startswith("jsonl:") and spec[6:]:
        return "jsonl", Path(spec[6:])
    raise DatasetError(f"unknown dataset {spec!r}; expected one of {', '.join(SPECS)}")


def builtin_task(name: str) -> str | None:
    """The task a built-in dataset is scored by (None for a user's file: --task names it)."""
    return "synthetic" if name in GENERATED else BUILTIN[name][4] if name in BUILTIN else None


def read_builtin(name: str, task: Task) -> list[Question]:
    file, q, a, solution, _ = BUILTIN[name]
    path = datasets.data_dir() / file
    if not path.is_file():
        raise DatasetError(f"{path} not found: set RISE_DATA_DIR to the folder holding gsm8k/ and math500/")
    return read_questions(path, task, q, a, solution)


def read_questions(path: Path, task: Task, question_field: str = "question", answer_field: str = "answer",
                   solution_field: str | None = None) -> list[Question]:
    """Every row of a JSON-lines file as a Question under `task` (DatasetError on the first bad row)."""
    out = []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise DatasetError(f"{path}: cannot be read ({e.strerror or e})") from None
    with f:
        try:
            for n, line in enumerate(f, 1):
                if line.strip():
                    out.append(_row(path, n, line, task, question_field, answer_field, solution_field))
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: not UTF-8 text") from None
    if not out:
        raise DatasetError(f"{path}: no rows (the file is empty)")
    return out


def _row(path: Path, n: int, line: str, task: Task, qf: str, af: str, sf: str | None) -> Question:
    where = f"{path}:{n}"
    try:
        row = json.loads(line)
    except ValueError as e:
        raise DatasetError(f"{where}: not a JSON line ({e})") from None
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: not a JSON object")
    for field, flag in ((qf, "--question-field"), (af, "--answer-field")):
        if field not in row:
            has = ", ".join(repr(k) for k in list(row)[:8]) or "no fields"
            raise DatasetError(f"{where}: no {field!r} field (the row has {has}); name the field with {flag}")
    question = row[qf]
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: {qf!r} is not a non-empty string")
    reference = task.reference(row[af])
    if reference is None:
        raise DatasetError(f"{where}: {af!r} {_short(row[af])} is not an answer of task {task.name} "
                           f"(it reads {task.reads}){_other_task(task, row[af])}")
    raw = str(row[af]).strip()
    solution = row.get(sf) if sf and sf != af else raw if raw != reference else None
    return Question(question, reference, solution if isinstance(solution, str) and solution.strip() else None)


def _other_task(task: Task, raw: object) -> str:
    if not re.search(r"[\d\\]", str(raw)):  # a word any LaTeX parser takes is no sign of another format
        return ""
    others = [t.name for t in TASKS.values() if t.name != task.name and t.reference(raw) is not None]
    return f"; task {others[0]} reads it: is the dataset in that format (--task {others[0]})?" if others else ""


def _short(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
