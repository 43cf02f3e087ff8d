"""`rise eval`: run the refinement loop over a dataset and compute the paper's metrics.

Per problem and seed it runs the no-oracle loop (K turns) and N parallel first-turn samples; p1@tk
comes from the no-oracle run's turns: the oracle run would repeat them exactly (same seeds, same
feedback text) up to its first correct turn, so p1@tk = "any correct among turns 1..k" and the
oracle run is skipped (a third of the time). `EvalConfig(oracle_run=True)` (`rise eval
--oracle-run`) runs it anyway, takes p1 from it and counts the problems where the two differ.

    rise eval --model models/rise-synth --dataset synthetic --limit 1000 --seeds 0 1 --out runs/eval
    .venv/bin/python -m pytest -q tests/evaluation/test_runner.py
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

from tqdm import tqdm

from app.answers.protocol import Checker
from app.engines.base import Engine, PromptTooLongError, SamplingParams
from app.evaluation import metrics, paired
from app.refine.loop import reference_oracle, refine
from app.refine.types import RefineConfig

P1_SOURCE = ("p1@tk is computed from the no-oracle run: any correct answer among its turns 1..k. The oracle run "
             "repeats those turns (same seeds, same feedback text) up to its first correct turn, so the two are "
             "equal; rise eval --oracle-run runs the oracle loop and checks it (oracle_check per seed).")
TOKENS_NOTE = ("mean tokens per problem (prompt + completion = total, and completion alone) of each method: m1@tk "
               "runs turns 1..k; p1@tk the turns up to the first correct one (at most k); m5@t1 five parallel "
               "first-turn samples, each with its own prompt.")


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
    oracle_run: bool = False  # also run the oracle loop (p1 from it; checked against the no-oracle run)


@dataclass
class Run:
    """What one loop run on one problem gave: per turn (or parallel sample) its answer and tokens."""

    answers: list[str | None]
    tokens: list[tuple[int, int]] = field(default_factory=list)  # (prompt, completion)
    correct: list[bool] | None = None  # the oracle run's verdicts


async def evaluate(engine: Engine, items: Sequence[Item], checker: Checker, cfg: EvalConfig = EvalConfig(),
                   progress: bool = True) -> dict:
    """All metrics for each seed; their summary over problems and seeds (n = problems, standard error
    over problems of the per-problem mean across seeds); the paired differences within the run; and
    `records` (seed -> metric -> 0/1 per problem, for per_problem.json)."""
    per_seed, records = {}, {}
    started = time.monotonic()
    for seed in cfg.seeds:
        per_seed[str(seed)], records[str(seed)] = await _one_seed(engine, items, checker, cfg, seed, progress)
    overall = paired.summarize(records)
    tokens = {key: {part: round(sum(s["tokens"][key][part] for s in per_seed.values()) / len(per_seed), 2)
                    for part in ("total", "completion", "prompt")} for key in per_seed[str(cfg.seeds[0])]["tokens"]}
    return {"n_problems": len(items), "seeds": list(cfg.seeds), "config": _plain(cfg), "p1_source": P1_SOURCE,
            "summary": {k: v for k, v in overall.items() if _is_headline(k)},
            "flow": metrics.nest_flow({k: v for k, v in overall.items() if "/" in k}),
            "tokens": tokens, "tokens_note": TOKENS_NOTE,
            "paired": paired.within_run(records, cfg.turns, cfg.parallel_samples),
            "per_seed": per_seed, "records": records, "seconds": round(time.monotonic() - started, 1)}


def _is_headline(key: str) -> bool:
    """p1@tk, m1@tk, m5@t1, pass@k (not the flow's `a/b` keys nor the `(tie last)` variants)."""
    return " " not in key and "/" not in key and key.startswith(("p", "m"))


async def _one_seed(engine, items, checker, cfg: EvalConfig, seed: int, progress: bool) -> tuple[dict, dict]:
    sem = asyncio.Semaphore(cfg.concurrency)
    sampling = SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_tokens)
    base = RefineConfig(max_turns=cfg.turns, window=cfg.window, sampling=sampling)
    modes = ("self", "parallel") + (("oracle",) if cfg.oracle_run else ())
    bar = tqdm(total=len(modes) * len(items), desc=f"eval seed {seed}", disable=not progress, mininterval=2)
    too_long: set[int] = set()

    async def run(i: int, item: Item, mode: str) -> Run:
        async with sem:
            try:
                out = await attempt(i, item, mode)
            except PromptTooLongError:  # the question alone does not fit the model: unanswered
                too_long.add(i)
                width = cfg.parallel_samples if mode == "parallel" else cfg.turns
                out = Run([None] * width, [(0, 0)] * width, [False] if mode == "oracle" else None)
        bar.update(1)
        return out

    async def attempt(i: int, item: Item, mode: str) -> Run:
        s = replace(sampling, seed=seed * 1_000_003 + i)
        if mode == "parallel":
            r = await refine(engine, item.question, checker,
                             replace(base, max_turns=1, samples_per_turn=cfg.parallel_samples, sampling=s))
            samples = r.turns[0].samples
            return Run([x.answer for x in samples], [(x.prompt_tokens, x.completion_tokens) for x in samples])
        oracle = reference_oracle(checker, item.reference) if mode == "oracle" else None
        r = await refine(engine, item.question, checker, replace(base, sampling=s), oracle=oracle)
        tokens = [(sum(x.prompt_tokens for x in t.samples), sum(x.completion_tokens for x in t.samples)) for t in r.turns]
        missing = cfg.turns - len(r.turns)  # turns that did not fit the context: no answer, no tokens
        return Run([t.answer for t in r.turns] + [None] * missing, tokens + [(0, 0)] * missing,
                   [bool(t.correct) for t in r.turns] if oracle else None)

    done = await asyncio.gather(*[run(i, it, mode) for mode in modes for i, it in enumerate(items)])
    bar.close()
    n = len(items)
    selfrun, parallel = done[:n], done[n:2 * n]
    refs = [it.reference for it in items]
    eq = checker.equivalent
    answers = [r.answers for r in selfrun]
    self_correct = metrics.correctness(answers, refs, eq)
    p1 = metrics.p1_vectors(self_correct, cfg.turns)
    extra = {}
    if cfg.oracle_run:
        from_oracle = metrics.p1_vectors([r.correct for r in done[2 * n:]], cfg.turns)
        differs = sum(any(from_oracle[k][i] != p1[k][i] for k in p1) for i in range(n))
        extra["oracle_check"] = {"problems": n, "p1_differs": differs}
        p1 = from_oracle
    tie_last = metrics.m1_vectors(answers, refs, eq, cfg.turns, "last")
    samples = [r.answers for r in parallel]
    records = {**p1, **metrics.m1_vectors(answers, refs, eq, cfg.turns, "first"),
               **metrics.m_at_t1_vector(samples, refs, eq, cfg.parallel_samples),
               **metrics.pass_vectors(samples, refs, eq),
               **metrics.flow_vectors(answers, refs, eq, cfg.turns),
               **{f"{k} (tie last)": v for k, v in tie_last.items()}}
    flat = metrics.stats(records)
    result = {
        "question_too_long": len(too_long),  # counted as wrong: the model's context cannot hold them
        **{k: v for k, v in flat.items() if _is_headline(k)},
        "m1_tie_last": metrics.stats(tie_last),
        "flow": metrics.nest_flow({k: v for k, v in flat.items() if "/" in k}),
        "tokens": metrics.token_costs([r.tokens for r in selfrun], self_correct, [r.tokens for r in parallel],
                                      cfg.turns, cfg.parallel_samples),
        "p1_source": "oracle run" if cfg.oracle_run else "no-oracle run",
        **extra,
    }
    return result, records


def _plain(cfg: EvalConfig) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()}
