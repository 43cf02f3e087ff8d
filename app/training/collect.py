"""RISE data collection: on-policy multi-turn rollouts, improved next turns, reward-weighted examples.

For each training problem the current model runs the refinement loop with oracle feedback
(the same `refine` the server uses). Each wrong turn gets an improved response from a source:

- `self`   best-of-N samples from the model itself in the same context (RISE used N = 16), falling
           back to N samples on the bare question when none is correct;
- `solver` the synthetic task's exact solver writing the minimal correction of the attempt;
- `teacher` best-of-N samples from another engine (a bigger model, a remote endpoint);
- `recheck` no oracle at all: the model rolls out with RISE's evaluation feedback ("incorrect" after
           every turn, as served without an oracle), and after *every* turn, right or wrong, the
           solver writes the re-check turn (`app/tasks/recheck.py`): verify each step of the
           attempt, keep what is right, fix the first wrong step. So the model learns to judge its
           own attempt instead of changing it because it was told to. `later` adds that share of
           conversations whose attempt is itself a re-check (right, or with one slip), so that
           turns 3+ are trained before the model writes re-checks of its own; `solver_attempts`
           (`synthetic_recheck`) adds conversations on fresh problems whose attempt the solver
           writes (its solution, or one slip), so the new turn format gets enough examples without
           paying for a rollout each. The attempt is context only (weight 0): it was sampled at
           temperature 1, and imitating it taught turn 1 the model's own slips.

Targets whose final answer is right but whose steps are wrong ("lucky") are dropped wherever the
task can check steps. A turn that was already right yields a conversation whose target keeps the
answer, so the model also learns not to break a correct answer when told it is wrong.

Each example is (messages, per-message weights): the attempt in context weighs exp(r/τ)
(r = 1 correct, 0 wrong, −1 unparseable; `recheck`: 0), the improved target exp(1/τ).
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field

from app.answers.protocol import Checker
from app.engines.base import Engine, SamplingParams
from app.refine.feedback import DEFAULT_FEEDBACK, render_feedback
from app.refine.loop import reference_oracle, refine
from app.refine.types import RefineConfig
from app.tasks import synthetic
from app.tasks.recheck import corrupt_recheck, recheck

SOURCES = ("self", "solver", "teacher", "recheck")


@dataclass
class CollectConfig:
    source: str = "self"
    turns: int = 3
    best_of: int = 16
    temperature: float = 1.0
    max_tokens: int = 160
    tau: float = 0.4
    concurrency: int = 128
    seed: int = 0
    later: float = 0.0  # recheck: extra conversations per problem whose attempt is a re-check
    later_wrong: float = 0.4  # recheck: the share of those whose re-check has a slip


@dataclass
class CollectStats:
    problems: int = 0
    turns: int = 0
    wrong_turns: int = 0
    improved: int = 0
    fallback_bare: int = 0
    lucky_dropped: int = 0
    no_target: int = 0
    kept_correct: int = 0
    turn1_correct: int = 0
    flips: dict = field(default_factory=dict)  # recheck: "t1>t2": {"right_to_wrong": n, "wrong_to_right": n}
    examples: int = 0
    by_turn_correct: dict = field(default_factory=dict)


def reward(checker: Checker, text: str, reference: str) -> int:
    answer = checker.extract(text)
    if answer is None:
        return -1
    return 1 if checker.equivalent(answer, reference) else 0


def weight(r: int, tau: float) -> float:
    return math.exp(r / tau)


async def collect(engine: Engine, problems: list[synthetic.Problem], checker: Checker, cfg: CollectConfig,
                  teacher: Engine | None = None, progress=None) -> tuple[list[tuple[list[dict], list[float]]], CollectStats]:
    """Examples for weighted fine-tuning, and what happened while collecting them."""
    if cfg.source not in SOURCES:
        raise ValueError(f"unknown source {cfg.source!r}; expected one of {', '.join(SOURCES)}")
    if cfg.source == "teacher" and teacher is None:
        raise ValueError("source 'teacher' needs a teacher engine")
    stats = CollectStats(problems=len(problems))
    examples = await fan_out(problems, lambda p, seed: _collect_one(engine, teacher, p, checker, cfg, stats, seed),
                             cfg, progress)
    stats.examples = len(examples)
    return examples, stats


async def fan_out(items: list, one, cfg: CollectConfig, progress=None) -> list:
    """`one(item, seed)` for every item, `cfg.concurrency` at a time (each item its own sampling seed),
    its examples concatenated in the items' order."""
    sem = asyncio.Semaphore(cfg.concurrency)

    async def run(i: int, item):
        async with sem:
            out = await one(item, cfg.seed * 1_000_003 + i)
        if progress:
            progress(1)
        return out

    per_item = await asyncio.gather(*[run(i, item) for i, item in enumerate(items)])
    return [ex for exs in per_item for ex in exs]


async def _collect_one(engine, teacher, p: synthetic.Problem, checker: Checker, cfg: CollectConfig,
                       stats: CollectStats, seed: int) -> list[tuple[list[dict], list[float]]]:
    if cfg.source == "recheck":
        return await _collect_recheck(engine, p, checker, cfg, stats, seed)
    sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed)
    run = await refine(engine, p.question, checker, RefineConfig(max_turns=cfg.turns, window="last", sampling=sampling),
                       oracle=reference_oracle(checker, p.answer))
    q = {"role": "user", "content": p.question}
    again = {"role": "user", "content": render_feedback(DEFAULT_FEEDBACK, p.question)}
    hi = weight(1, cfg.tau)
    examples = []
    stats.turns += len(run.turns)
    for t in run.turns:
        key = f"t{t.index}"
        stats.by_turn_correct[key] = stats.by_turn_correct.get(key, 0) + int(bool(t.correct))
    if run.turns[0].correct:
        stats.turn1_correct += 1
    for t in run.turns:
        attempt = t.text
        if t.correct and synthetic.check_steps(p, attempt):
            # right: learn the answer, and to keep it when told it is wrong
            examples.append(([q, {"role": "assistant", "content": attempt}], [0.0, hi]))
            examples.append(([q, {"role": "assistant", "content": attempt}, again, {"role": "assistant", "content": attempt}],
                             [0.0, hi, 0.0, hi]))
            stats.kept_correct += 1
            continue
        if t.correct:  # lucky: right answer, wrong steps
            stats.lucky_dropped += 1
        stats.wrong_turns += 1
        target = await _improve(engine, teacher, p, attempt, checker, cfg, stats, seed + 7 * t.index)
        if target is None:
            stats.no_target += 1
            continue
        stats.improved += 1
        r = reward(checker, attempt, p.answer)
        examples.append(([q, {"role": "assistant", "content": attempt}, again, {"role": "assistant", "content": target}],
                         [0.0, weight(min(r, 0), cfg.tau), 0.0, hi]))
    return examples


async def _improve(engine, teacher, p: synthetic.Problem, attempt: str, checker: Checker, cfg: CollectConfig,
                   stats: CollectStats, seed: int) -> str | None:
    """A better next turn after `attempt`, or None when the source finds none."""
    if cfg.source == "solver":
        return synthetic.minimal_correction(p, attempt)
    source = teacher if cfg.source == "teacher" else engine
    params = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, n=cfg.best_of, seed=seed)
    context = [{"role": "user", "content": p.question}, {"role": "assistant", "content": attempt},
               {"role": "user", "content": render_feedback(DEFAULT_FEEDBACK, p.question)}]
    for prompt in (context, context[:1]):  # in context first, then the bare question
        [samples] = await source.generate([prompt], params)
        for s in samples:
            if checker.equivalent(checker.extract(s.text), p.answer):
                if synthetic.check_steps(p, s.text):
                    if prompt is not context:
                        stats.fallback_bare += 1
                    return s.text
                stats.lucky_dropped += 1
    return None


async def _collect_recheck(engine, p: synthetic.Problem, checker: Checker, cfg: CollectConfig,
                           stats: CollectStats, seed: int) -> list[tuple[list[dict], list[float]]]:
    """Self-mode rollouts (no oracle); after every turn the solver's re-check of that turn."""
    sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed)
    run = await refine(engine, p.question, checker, RefineConfig(max_turns=cfg.turns, window="last", sampling=sampling))
    hi = weight(1, cfg.tau)
    rewards = [reward(checker, t.text, p.answer) for t in run.turns]
    stats.turns += len(run.turns)
    for k, r in enumerate(rewards, start=1):
        stats.by_turn_correct[f"t{k}"] = stats.by_turn_correct.get(f"t{k}", 0) + int(r == 1)
        if k > 1:
            flow = stats.flips.setdefault(f"t{k - 1}>t{k}", {"right_to_wrong": 0, "wrong_to_right": 0})
            flow["right_to_wrong"] += int(rewards[k - 2] == 1 and r != 1)
            flow["wrong_to_right"] += int(rewards[k - 2] != 1 and r == 1)
    stats.turn1_correct += int(rewards[0] == 1)
    examples = []
    for t, r in zip(run.turns, rewards):
        stats.kept_correct += int(r == 1)
        stats.wrong_turns += int(r != 1)
        examples.append(recheck_conversation(p, t.text, hi))
        stats.improved += 1
    rng = random.Random(seed)
    extra = int(cfg.later) + (rng.random() < cfg.later - int(cfg.later))
    for _ in range(extra):
        examples.append(recheck_conversation(p, corrupt_recheck(p, rng) if rng.random() < cfg.later_wrong else recheck(p), hi))
    return examples


def recheck_conversation(p: synthetic.Problem, attempt: str, hi: float) -> tuple[list[dict], list[float]]:
    """The question, an attempt (context only), RISE's "incorrect" feedback, the solver's re-check
    (the same whatever the attempt said) weighted `hi`."""
    return ([{"role": "user", "content": p.question}, {"role": "assistant", "content": attempt},
             {"role": "user", "content": render_feedback(DEFAULT_FEEDBACK, p.question)},
             {"role": "assistant", "content": recheck(p)}], [0.0, 0.0, 0.0, hi])


def synthetic_recheck(rng: random.Random, count: int, level: synthetic.Difficulty, right: float,
                      tau: float) -> list[tuple[list[dict], list[float]]]:
    """`count` re-check conversations on fresh training problems, no rollout: the attempt is the
    solver's solution (a share `right` of them) or the solution with one slip (`synthetic.corrupt`)."""
    out, hi = [], weight(1, tau)
    for _ in range(count):
        p = synthetic.generate(rng, level, "train")
        out.append(recheck_conversation(p, p.solution if rng.random() < right else synthetic.corrupt(p, rng), hi))
    return out
