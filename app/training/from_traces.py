"""Served traffic as RISE training data: `rise train rise --from-traces data.jsonl` reads a labelled
export (`rise traces export --labelled-only`) instead of generating problems.

A trace's label gives the reference: the one it carries (feedback's "the right answer was ...", or
the oracle's); else a rating of 1 makes the served final answer the reference; a rating of -1
without a reference rejects the served answer, and the reference becomes the majority of the
model's (or the teacher's) best-of-N on the bare question among the answers not rejected, when at
least two samples agree on it (otherwise the trace is skipped). The served turns of every choice
are the on-policy rollouts of the first iteration (later iterations roll out the current model
with the oracle, as `collect.py` does). Each wrong turn gets an improved next turn from best-of-N
samples of the model (`--source self`) or the teacher (`--source teacher`), in context and then on
the bare question; a right turn is kept, and kept again after "incorrect" feedback. Traffic has no
known steps, so targets are checked by their final answer only. Weights and criteria as in `collect.py`.

Each trace is scored with the task it was served under (its `task`, recorded by the server: the
request's `task` or RISE_TASK), by that task's checker. A trace that cannot be scored is refused
before training, by its id: one that records no task (exported before traces recorded it) when no
`--task` is given for such traces, or whose reference its task cannot read.

    rise traces export --url sqlite:///traces.db --out data.jsonl --labelled-only
    rise train rise --model models/rise-synth --out runs/from-traffic --from-traces data.jsonl --iterations 1
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from app.answers.protocol import Checker
from app.engines.base import Engine, SamplingParams
from app.refine.loop import reference_oracle, refine
from app.refine.types import RefineConfig
from app.refine.vote import majority
from app.tasks.files import Question
from app.tasks.registry import TASKS, get_task
from app.training.collect import CollectConfig, CollectStats, fan_out, improve_turns, reward

Example = tuple[list[dict], list[float]]


@dataclass
class Traced:
    """One labelled trace: its question, label and served rollouts (each choice's turn texts)."""

    id: str
    question: str
    reference: str | None
    rating: int | None
    final_answer: str | None
    rollouts: list[list[str]] = field(default_factory=list)
    task: str | None = None  # the task it was served under
    line: int = 0

    @property
    def rejected(self) -> set[str]:
        return {self.final_answer} if self.rating == -1 and self.final_answer is not None else set()


@dataclass
class TraceStats(CollectStats):
    traces: int = 0
    rated_right: int = 0  # rating 1, no reference: the served answer is the reference
    pseudo_labelled: int = 0  # rating -1, no reference: best-of-N majority among answers not rejected
    skipped: int = 0  # no reference could be had


class TracesError(ValueError):
    """The file is not a labelled export: the message says where and why."""


def load_traces(path: Path | str) -> list[Traced]:
    """The labelled traces of an export (lines without a label are left out)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                question = d["question"]
                feedback = d.get("feedback") or {}
                choices = d.get("choices") or [d]
                rollouts = [[t["text"] for t in c.get("turns") or []] for c in choices]
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise TracesError(f"{path}:{n}: not a trace of `rise traces export` ({type(e).__name__}: {e})") from None
            item = Traced(d.get("id", f"line-{n}"), question, d.get("reference"), feedback.get("rating"),
                          d.get("final_answer"), [r for r in rollouts if r], d.get("task"), n)
            if item.reference is not None or item.rating in (-1, 1):
                out.append(item)
    return out


def check_scorable(items: list[Traced], path: Path | str, fallback: str | None = None) -> list[Traced]:
    """The traces with their task settled (their own, else `fallback` for traces that record none);
    TracesError naming the traces that cannot be scored."""
    bad = []
    for item in items:
        item.task = item.task or fallback
        if item.task is None:
            bad.append(f"{item.id} (line {item.line}) records no task (exported before traces recorded their "
                       "task): pass --task for such traces")
        elif item.task not in TASKS:
            bad.append(f"{item.id} (line {item.line}) was served under task {item.task!r}, which this version "
                       f"cannot score (tasks: {', '.join(TASKS)})")
        elif item.reference is not None and get_task(item.task).reference(item.reference) is None:
            bad.append(f"{item.id} (line {item.line}): its reference {item.reference!r} is not an answer of task "
                       f"{item.task} (it reads {get_task(item.task).reads})")
        elif item.reference is not None:
            item.reference = get_task(item.task).reference(item.reference)
    if bad:
        more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
        raise TracesError(f"{path}: cannot score trace " + "; trace ".join(bad[:3]) + more)
    return items


async def collect_traces(engine: Engine, items: list[Traced], cfg: CollectConfig, teacher: Engine | None = None,
                         served: bool = True, progress=None) -> tuple[list[Example], TraceStats]:
    """Examples for weighted fine-tuning from labelled traces (their task settled: `check_scorable`);
    `served`: use the served turns as the rollouts (the first iteration), else roll the current model
    out with the oracle."""
    if cfg.source not in ("self", "teacher"):
        raise ValueError(f"source {cfg.source!r} needs generated problems; traces take 'self' or 'teacher'")
    if cfg.source == "teacher" and teacher is None:
        raise ValueError("source 'teacher' needs a teacher engine")
    source = teacher if cfg.source == "teacher" else engine
    stats = TraceStats(traces=len(items), criterion=cfg.criterion)
    examples = await fan_out(items, lambda item, seed: _one(engine, source, item, cfg, stats, served, seed),
                             cfg, progress)
    stats.examples = stats.collected = len(examples)
    return examples, stats


async def _one(engine, source, item: Traced, cfg: CollectConfig, stats: TraceStats, served: bool,
               seed: int) -> list[Example]:
    task = get_task(item.task)
    reference = await _reference(source, item, task.checker, cfg, stats, seed)
    if reference is None:
        stats.skipped += 1
        return []
    stats.problems += 1
    if served and item.rollouts:
        rollouts = item.rollouts
    else:
        sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed)
        run = await refine(engine, item.question, task.checker, RefineConfig(max_turns=cfg.turns, sampling=sampling),
                           oracle=reference_oracle(task.checker, reference))
        rollouts = [[t.text for t in run.turns]]
    question = Question(item.question, reference)
    examples: list[Example] = []
    for turns in rollouts:
        rewards = [reward(task.checker, attempt, reference) for attempt in turns]
        for k, r in enumerate(rewards, 1):
            stats.turns += 1
            stats.by_turn_correct[f"t{k}"] = stats.by_turn_correct.get(f"t{k}", 0) + int(r == 1)
            stats.turn1_correct += int(k == 1 and r == 1)
        examples += await improve_turns(source, task, question, turns, cfg, stats, seed, rewards)
    return examples


async def _reference(source, item: Traced, checker: Checker, cfg: CollectConfig, stats: TraceStats,
                     seed: int) -> str | None:
    if item.reference is not None:
        return item.reference
    if item.rating == 1:
        stats.rated_right += int(item.final_answer is not None)
        return item.final_answer
    params = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, n=cfg.best_of, seed=seed)
    [samples] = await source.generate([[{"role": "user", "content": item.question}]], params)
    answers = [checker.extract(s.text) for s in samples]
    answers = [a for a in answers if a is not None and not any(checker.equivalent(a, x) for x in item.rejected)]
    winner, votes = majority(answers, checker.equivalent)
    if winner is None or max(votes.values(), default=0) < 2:
        return None
    stats.pseudo_labelled += 1
    return winner
