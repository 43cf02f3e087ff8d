"""`rise eval`: run the refinement loop over a dataset and compute the paper's metrics.

    rise eval --model models/rise-synth --dataset synthetic --limit 1000 --seeds 0 1 --out runs/eval
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Sequence

from tqdm import tqdm

from app.answers.protocol import Checker
from app.engines.base import Engine, PromptTooLongError, SamplingParams
from app.evaluation import metrics
from app.refine.loop import reference_oracle, refine
from app.refine.types import RefineConfig


@dataclass(frozen=True)
class Item:
    question: str
    reference: str


@dataclass(frozen=True)
class EvalConfig:
    turns: int = 5
    seeds: tuple[int, ...] = (0, 1)
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 160
    window: str = "last"
    parallel_samples: int = 5  # for m5@t1 and pass@k
    concurrency: int = 256


async def evaluate(engine: Engine, items: Sequence[Item], checker: Checker, cfg: EvalConfig = EvalConfig(),
                   progress: bool = True) -> dict:
    """All metrics for each seed, and their mean and spread across seeds."""
    per_seed = {}
    started = time.monotonic()
    for seed in cfg.seeds:
        per_seed[str(seed)] = await _one_seed(engine, items, checker, cfg, seed, progress)
    return {"n_problems": len(items), "seeds": list(cfg.seeds), "config": _plain(cfg),
            "summary": _summarize(per_seed), "per_seed": per_seed,
            "seconds": round(time.monotonic() - started, 1)}


async def _one_seed(engine, items, checker, cfg: EvalConfig, seed: int, progress: bool) -> dict:
    sem = asyncio.Semaphore(cfg.concurrency)
    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)
    base = RefineConfig(max_turns=cfg.turns, window=cfg.window, sampling=sampling)
    bar = tqdm(total=3 * len(items), desc=f"eval seed {seed}", disable=not progress, mininterval=2)
    too_long: set[int] = set()

    async def run(i: int, item: Item, mode: str):
        async with sem:
            try:
                return await attempt(i, item, mode)
            except PromptTooLongError:  # the question alone does not fit the model: unanswered
                too_long.add(i)
                bar.update(1)
                return [False] if mode == "oracle" else [None] * (cfg.parallel_samples if mode == "parallel" else cfg.turns)

    async def attempt(i: int, item: Item, mode: str):
        s = replace(sampling, seed=seed * 1_000_003 + i)
        if mode == "oracle":
            r = await refine(engine, item.question, checker, replace(base, sampling=s),
                             oracle=reference_oracle(checker, item.reference))
            out = [bool(t.correct) for t in r.turns]
        elif mode == "self":
            r = await refine(engine, item.question, checker, replace(base, sampling=s))
            out = [t.answer for t in r.turns]
            out += [None] * (cfg.turns - len(out))  # turns that did not fit the context: no answer
        else:
            r = await refine(engine, item.question, checker,
                             replace(base, max_turns=1, samples_per_turn=cfg.parallel_samples, sampling=s))
            out = [x.answer for x in r.turns[0].samples]
        bar.update(1)
        return out

    modes = ("oracle", "self", "parallel")
    done = await asyncio.gather(*[run(i, it, mode) for mode in modes for i, it in enumerate(items)])
    n = len(items)
    oracle, selfrun, parallel = done[:n], done[n:2 * n], done[2 * n:]
    bar.close()
    refs = [it.reference for it in items]
    eq = checker.equivalent
    return {
        "question_too_long": len(too_long),  # counted as wrong: the model's context cannot hold them
        **metrics.p1_at(oracle, cfg.turns),
        **metrics.m1_at(selfrun, refs, eq, cfg.turns, "first"),
        "m1_tie_last": metrics.m1_at(selfrun, refs, eq, cfg.turns, "last"),
        **metrics.m_at_t1(parallel, refs, eq, cfg.parallel_samples),
        **metrics.pass_at(parallel, refs, eq),
        "flow": metrics.flow(selfrun, refs, eq, cfg.turns),
    }


def _summarize(per_seed: dict) -> dict:
    """Mean over seeds of every top-level metric, with the spread (min, max) and the mean SE."""
    first = next(iter(per_seed.values()))
    out = {}
    for key, val in first.items():
        if isinstance(val, dict) and "mean" in val:
            means = [s[key]["mean"] for s in per_seed.values()]
            out[key] = {"mean": round(sum(means) / len(means), 4), "min": min(means), "max": max(means),
                        "se": round(sum(s[key]["se"] for s in per_seed.values()) / len(means), 4),
                        "n": val["n"] * len(means)}
    return out


def _plain(cfg: EvalConfig) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
