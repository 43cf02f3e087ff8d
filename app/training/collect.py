"""RISE data collection: on-policy multi-turn rollouts, improved next turns, reward-weighted examples.

For each training question the current model runs the refinement loop with oracle feedback (the
same `refine` the server uses, scored by the task's checker: the same the server scores with).
Each wrong turn gets an improved response from a source:

- `self`    best-of-N samples from the model itself in the same context (RISE used N = 16), falling
            back to N samples on the bare question when none is right;
- `teacher` the same from another engine: a model directory, vLLM, or a remote OpenAI-compatible
            endpoint (RISE's gpt-3.5 role);
- `solver`  the task's exact solver writing the minimal correction (tasks that have one: synthetic);
- `recheck` the synthetic task's re-check recipe (`app/training/synthetic_recipe.py`).

With `single_turn` (`rise train rise --single-turn`, the rejection-sampling one-turn baseline) there
is no rollout and no second turn: best-of-N samples of turn 1 on the bare question, and each right
one is a single-turn example (question -> answer) weighted as a right turn.

When no sample is right, the best one (highest reward) is the improved turn, and the criterion
decides whether it is trained (`app/training/criteria.py`: `all` keeps it at exp(0/τ) = 1, `success`
drops it). Samples whose final answer is right but whose steps are wrong ("lucky") score 0
wherever the task can check steps. A turn that was already right yields a conversation that keeps
the answer after "incorrect" feedback, so the model also learns not to break a right answer.

Each example is (messages, per-message weights): a kept turn weighs exp(r/τ) (r = 1 right, 0 wrong,
−1 no answer), a turn the criterion drops stays in the context with weight 0.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from app.engines.base import Engine, SamplingParams
from app.refine.feedback import DEFAULT_FEEDBACK, render_feedback
from app.refine.loop import reference_oracle, refine
from app.refine.types import RefineConfig
from app.tasks.registry import Task, as_task
from app.training.criteria import CRITERIA, keeps, kept, reward, weight

SOURCES = ("self", "teacher", "solver", "recheck")
Example = tuple[list[dict], list[float]]
__all__ = ["SOURCES", "CollectConfig", "CollectStats", "collect", "fan_out", "improve", "reward", "score",
           "trajectory", "weight"]


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
    criterion: str = "all"
    later: float = 0.0  # recheck (the synthetic recipe): extra conversations per problem whose attempt is a re-check
    later_wrong: float = 0.4  # recheck: the share of those whose re-check has a slip
    single_turn: bool = False  # rejection sampling: right first-turn samples only, no second turn


@dataclass
class CollectStats:
    problems: int = 0
    turns: int = 0
    wrong_turns: int = 0
    improved: int = 0  # wrong turns given a right improved turn
    fallback_bare: int = 0
    lucky_dropped: int = 0
    no_target: int = 0  # wrong turns for which no source sample was right
    kept_correct: int = 0
    turn1_correct: int = 0
    flips: dict = field(default_factory=dict)  # recheck: "t1>t2": {"right_to_wrong": n, "wrong_to_right": n}
    examples: int = 0  # the conversations trained (after `--max-examples`, where a run caps them)
    collected: int = 0  # the conversations collected
    by_turn_correct: dict = field(default_factory=dict)
    criterion: str = "all"
    targets: dict = field(default_factory=lambda: dict.fromkeys(CRITERIA, 0))  # targets each criterion keeps

    def count(self, rewards: list[int]) -> None:
        for c, n in kept(rewards).items():
            self.targets[c] += n


def score(task: Task, problem, text: str, stats: CollectStats | None = None) -> int:
    """The turn's reward by the task's checker; a right answer by wrong steps ("lucky", counted in
    `stats`) scores 0 where the task can check steps."""
    r = reward(task.checker, text, problem.answer)
    if r == 1 and not task.steps_ok(problem, text):
        if stats is not None:
            stats.lucky_dropped += 1
        return 0
    return r


def trajectory(question: str, texts: list[str], rewards: list[int], cfg: CollectConfig,
               stats: CollectStats) -> Example | None:
    """One conversation of a trajectory's turns (feedback between them), each turn weighted exp(r/τ)
    when the criterion keeps it, else 0; None when it keeps none."""
    stats.count(rewards)
    again = {"role": "user", "content": render_feedback(DEFAULT_FEEDBACK, question)}
    msgs, weights = [{"role": "user", "content": question}], [0.0]
    for i, (text, r) in enumerate(zip(texts, rewards)):
        if i:
            msgs.append(again)
            weights.append(0.0)
        msgs.append({"role": "assistant", "content": text})
        weights.append(weight(r, cfg.tau) if keeps(cfg.criterion, rewards, i) else 0.0)
    return (msgs, weights) if any(weights) else None


async def collect(engine: Engine, problems: list, task, cfg: CollectConfig, teacher: Engine | None = None,
                  progress=None) -> tuple[list[Example], CollectStats]:
    """Examples for weighted fine-tuning, and what happened while collecting them. `problems` have a
    `question` and an `answer` (a task's generated problems, or file rows); `task` is a Task (or its
    checker)."""
    task = as_task(task)
    if cfg.source not in SOURCES:
        raise ValueError(f"unknown source {cfg.source!r}; expected one of {', '.join(SOURCES)}")
    if cfg.source == "teacher" and teacher is None:
        raise ValueError("source 'teacher' needs a teacher engine")
    if cfg.source in ("solver", "recheck") and not task.has_solver:
        raise ValueError(f"source {cfg.source!r} needs a task with a solver; task {task.name} has none")
    stats = CollectStats(problems=len(problems), criterion=cfg.criterion)
    examples = await fan_out(problems, lambda p, seed: _collect_one(engine, teacher, p, task, cfg, stats, seed),
                             cfg, progress)
    stats.examples = stats.collected = len(examples)
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


async def _collect_one(engine, teacher, p, task: Task, cfg: CollectConfig, stats: CollectStats,
                       seed: int) -> list[Example]:
    if cfg.source == "recheck":
        from app.training.synthetic_recipe import collect_recheck

        return await collect_recheck(engine, p, task.checker, cfg, stats, seed)
    if cfg.single_turn:
        return await rejection_samples(teacher if cfg.source == "teacher" else engine, task, p, cfg, stats, seed)
    sampling = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=seed)
    run = await refine(engine, p.question, task.checker,
                       RefineConfig(max_turns=cfg.turns, window="last", sampling=sampling),
                       oracle=reference_oracle(task.checker, p.answer))
    stats.turns += len(run.turns)
    for t in run.turns:
        key = f"t{t.index}"
        stats.by_turn_correct[key] = stats.by_turn_correct.get(key, 0) + int(bool(t.correct))
    stats.turn1_correct += int(bool(run.turns[0].correct))
    source = teacher if cfg.source == "teacher" else engine
    return await improve_turns(source, task, p, [t.text for t in run.turns], cfg, stats, seed)


async def rejection_samples(source: Engine, task: Task, p, cfg: CollectConfig, stats: CollectStats,
                            seed: int) -> list[Example]:
    """Best-of-N samples of turn 1 on the bare question; each right one is a single-turn example."""
    params = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, n=cfg.best_of, seed=seed)
    [samples] = await source.generate([[{"role": "user", "content": p.question}]], params)
    rewards = [score(task, p, s.text, stats) for s in samples]
    stats.turns += len(samples)
    stats.turn1_correct += int(rewards[0] == 1)
    stats.by_turn_correct["t1"] = stats.by_turn_correct.get("t1", 0) + sum(r == 1 for r in rewards)
    examples = []
    for s, r in zip(samples, rewards):
        if r == 1:
            stats.kept_correct += 1
            examples.append(trajectory(p.question, [s.text], [1], cfg, stats))
        else:
            stats.wrong_turns += 1
    return examples


async def improve_turns(source: Engine, task: Task, p, attempts: list[str], cfg: CollectConfig, stats: CollectStats,
                        seed: int, rewards: list[int] | None = None) -> list[Example]:
    """The examples of one rollout's turns (`rewards`: their scores, when known): a right turn is kept
    (and kept again after feedback); a wrong one is followed by the source's improved turn."""
    examples = []
    for k, attempt in enumerate(attempts, 1):
        r = rewards[k - 1] if rewards is not None else score(task, p, attempt, stats)
        if r == 1:  # right: learn the answer, and to keep it when told it is wrong
            stats.kept_correct += 1
            examples += [ex for ex in (trajectory(p.question, [attempt], [1], cfg, stats),
                                       trajectory(p.question, [attempt, attempt], [1, 1], cfg, stats)) if ex]
            continue
        stats.wrong_turns += 1
        found = await improve(source, task, p, attempt, cfg, stats, seed + 7 * k)
        if found is None:
            continue
        target, rt = found
        ex = trajectory(p.question, [attempt, target], [r, rt], cfg, stats)
        if ex:
            examples.append(ex)
    return examples


async def improve(source: Engine | None, task: Task, p, attempt: str, cfg: CollectConfig,
                  stats: CollectStats, seed: int) -> tuple[str, int] | None:
    """A better next turn after `attempt` and its reward: the solver's correction (`solver`), else the
    first right sample of best-of-N in context, then on the bare question; when none is right, the
    best in-context sample (the criterion decides whether it trains). None when there is no sample."""
    if cfg.source == "solver":
        fixed = task.solve(p, attempt)
        if fixed is None:
            stats.no_target += 1
            return None
        stats.improved += 1
        return fixed, 1
    params = SamplingParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, n=cfg.best_of, seed=seed)
    context = [{"role": "user", "content": p.question}, {"role": "assistant", "content": attempt},
               {"role": "user", "content": render_feedback(DEFAULT_FEEDBACK, p.question)}]
    best: tuple[str, int] | None = None
    for prompt in (context, context[:1]):  # in context first, then the bare question
        [samples] = await source.generate([prompt], params)
        for s in samples:
            r = score(task, p, s.text, stats)
            if r == 1:
                stats.improved += 1
                stats.fallback_bare += int(prompt is not context)
                return s.text, 1
            if prompt is context and (best is None or r > best[1]):
                best = (s.text, r)
    stats.no_target += 1
    return best
