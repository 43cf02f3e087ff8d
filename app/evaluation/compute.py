"""`rise eval --compute`: accuracy against compute over the same problems and seeds, for fixed K,
parallel N, each early-stopping rule and confidence votes.

One rollout per problem and seed serves every method: the no-oracle run of K turns (with token
log-probs) and N parallel first-turn samples. With RISE's `last` window turn k depends only on the
turns before it, so a rule that stops at turn j produces exactly the first j turns of that rollout;
each method is computed from its prefix. Fixed K and parallel N vote as RISE's m1 does (a tie to
the earlier answer), with "tie-last" rows beside them; the early-stopping rules and confidence votes
vote as the service does (ties to the later turn).

Each row's accuracy and standard error are the model cards' (`paired.across_seeds`: per problem the
mean over seeds, SE over problems, n = problems), and `vs_fixed` is its paired difference with fixed
K = turns on the same problems and seeds (`paired.paired`): what a claim that a rule "matches K = 5"
rests on. The 0/1 records per method, seed and problem go to compute_per_problem.json.

    rise eval --compute --limit 1000 --seeds 0 1 --out runs/compute     # compute.json, compute.png
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from app.answers.protocol import Checker
from app.engines.base import Engine, PromptTooLongError, SamplingParams
from app.evaluation import paired
from app.refine import policy
from app.refine.checks import InlineChecks
from app.refine.loop import refine
from app.refine.types import RefineConfig, Sample, Turn
from app.refine.vote import tally

RECORDS = "compute_per_problem.json"  # beside compute.json: 0/1 per method, seed and problem
FORMS = ("mean", "tail", "min")
THRESHOLDS = {"mean": (0.9, 0.93, 0.95, 0.97, 0.98, 0.99), "tail": (0.97, 0.98, 0.99, 0.995),
              "min": (0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.8)}


@dataclass
class Rollout:
    turns: list[Turn]  # the no-oracle run (each turn one sample, with its token log-probs)
    parallel: list[Sample]  # N first-turn samples
    reference: str


async def rollouts(engine: Engine, items: Sequence, checker: Checker, *, turns: int, parallel: int, seed: int,
                   temperature: float, max_tokens: int, concurrency: int = 256, progress: bool = True) -> list[Rollout]:
    sem = asyncio.Semaphore(concurrency)
    sampling = SamplingParams(temperature=temperature, max_tokens=max_tokens, logprobs=True)
    bar = tqdm(total=len(items), desc=f"compute seed {seed}", disable=not progress, mininterval=2)

    async def one(i: int, item) -> Rollout:
        s = replace(sampling, seed=seed * 1_000_003 + i)
        async with sem:
            try:
                run = await refine(engine, item.question, checker, RefineConfig(max_turns=turns, sampling=s))
                par = await refine(engine, item.question, checker,
                                   RefineConfig(max_turns=1, samples_per_turn=parallel, sampling=s))
                out = Rollout(run.turns, par.turns[0].samples, item.reference)
            except PromptTooLongError:
                out = Rollout([], [], item.reference)
        bar.update(1)
        return out

    done = await asyncio.gather(*[one(i, it) for i, it in enumerate(items)])
    bar.close()
    return list(done)


def _with_form(samples: Sequence[Sample], form: str) -> list[Sample]:
    """The samples with their confidence recomputed in `form` from the kept log-probs."""
    return [replace(s, confidence=policy.confidence(s.token_logprobs, form)) for s in samples]


async def _vote(samples: Sequence[Sample], config: RefineConfig, checks) -> str | None:
    groups = await checks.clusters([s.answer for s in samples])
    winner, _, _ = tally(groups, config.tie_break, policy.weights_of(samples, config))
    return winner


async def evaluate_methods(runs: Sequence[Rollout], checker: Checker, turns: int, parallel: int,
                           seeds: int = 1, records: dict | None = None) -> list[dict]:
    """Rows {method, accuracy, se, n, seeds, vs_fixed, tokens_per_problem, turns_per_problem} for every
    method. `runs` holds `seeds` rollouts of each problem, seed-major (every problem of the first seed,
    then the next); `records`, when given, receives method -> one 0/1 list per seed."""
    if seeds < 1 or len(runs) % seeds:
        raise ValueError(f"{len(runs)} rollouts are not {seeds} seeds of the same problems")
    width = len(runs) // seeds
    checks = InlineChecks(checker)
    methods: list[tuple[str, RefineConfig, str]] = []  # (name, config, source: "turns" | "parallel")
    for k in range(1, turns + 1):
        methods.append((f"fixed K={k}", RefineConfig(max_turns=k), "turns"))
    # the served default (API and `rise refine`): a tie goes to the later turn, so K=2 answers with a re-check
    methods += [(f"fixed K={k} tie-last", RefineConfig(max_turns=k, tie_break="last"), "turns") for k in range(2, turns + 1)]
    for n in range(1, parallel + 1):
        methods.append((f"parallel N={n}", RefineConfig(max_turns=1, samples_per_turn=n), "parallel"))
    # the rules a caller asks for (early_stop, aggregation) vote as served: ties to the later turn
    served = {"tie_break": "last"}
    methods += [(f"agree({a}) K={turns}", RefineConfig(max_turns=turns, early_stop="agree", agree_turns=a, **served),
                 "turns") for a in (2, 3) if a <= turns]
    methods.append((f"settled K={turns}", RefineConfig(max_turns=turns, early_stop="settled", **served), "turns"))
    for form in FORMS:
        methods += [(f"confident({form}>={t}) K={turns}", RefineConfig(max_turns=turns, early_stop="confident",
                                                                         confidence_threshold=t, confidence=form,
                                                                         **served), "turns")
                    for t in THRESHOLDS[form]]
        methods.append((f"confidence-vote({form}) K={turns}", RefineConfig(max_turns=turns, aggregation="confidence",
                                                                          confidence=form, **served), "turns"))
        methods.append((f"confidence-vote({form}) N={parallel}",
                        RefineConfig(max_turns=1, samples_per_turn=parallel, aggregation="confidence", confidence=form,
                                     **served), "parallel"))
    rows, per_seed = [], {}
    for name, config, source in methods:
        hits, tokens, used = [], [], []
        for r in runs:
            answer, spent, n_turns = await _apply(r, config, source, checks, parallel)
            hits.append(float(checker.equivalent(answer, r.reference)))
            tokens.append(spent)
            used.append(n_turns)
        per_seed[name] = [hits[i * width:(i + 1) * width] for i in range(seeds)]
        s = paired.across_seeds(per_seed[name]) if width else {"mean": 0.0, "se": None, "n": 0}
        rows.append({"method": name, "accuracy": s["mean"], "se": s["se"], "n": s["n"], "seeds": seeds,
                     "tokens_per_problem": round(sum(tokens) / max(len(tokens), 1), 2),
                     "turns_per_problem": round(sum(used) / max(len(used), 1), 3)})
    fixed = f"fixed K={turns}"
    for row in rows:  # each rule against RISE's fixed K on the same problems and seeds
        row["vs_fixed"] = {"against": fixed, **paired.paired(per_seed[row["method"]], per_seed[fixed])} if width \
            else None
    if records is not None:
        records.update(per_seed)
    return rows


async def _apply(r: Rollout, config: RefineConfig, source: str, checks, parallel: int) -> tuple[str | None, int, int]:
    """(answer, completion tokens, turns) of one method on one rollout."""
    if source == "parallel":
        samples = _with_form(r.parallel[:config.samples_per_turn], config.confidence)
        if not samples:
            return None, 0, 0
        return await _vote(samples, config, checks), sum(s.completion_tokens for s in samples), 1
    turns = [replace(t, samples=_with_form(t.samples, config.confidence)) for t in r.turns[:config.max_turns]]
    stop = len(turns)
    for j in range(1, len(turns) + 1):
        if await policy.stop_reason(turns[:j], config, checks):
            stop = j
            break
    kept = turns[:stop]
    samples = [s for t in kept for s in t.samples]
    return (await _vote(samples, config, checks) if samples else None,
            sum(s.completion_tokens for s in samples), len(kept))


def pareto(rows: Sequence[dict]) -> list[dict]:
    """The rows no other row beats on both accuracy (higher) and tokens (fewer), by tokens."""
    front = [r for r in rows if not any(o["accuracy"] >= r["accuracy"] and o["tokens_per_problem"] <= r["tokens_per_problem"]
                                        and (o["accuracy"], -o["tokens_per_problem"]) != (r["accuracy"], -r["tokens_per_problem"])
                                        for o in rows)]
    return sorted(front, key=lambda r: r["tokens_per_problem"])


def plot_compute(rows: Sequence[dict], out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.8), dpi=120)
    families = [("fixed", "fixed K (majority over turns)", "s-"), ("tie-last", "fixed K, ties to the later turn", "s:"),
                ("parallel", "parallel N (majority)", "o-"),
                ("agree", "agree", "^"), ("settled", "settled", "v"), ("confident", "confident (threshold)", "x"),
                ("confidence-vote", "confidence vote", "D")]
    def family(method: str) -> str:
        return "tie-last" if method.endswith("tie-last") else next(f for f, _, _ in families if method.startswith(f))

    for name, label, style in families:
        mine = sorted((r for r in rows if family(r["method"]) == name), key=lambda r: r["tokens_per_problem"])
        if mine:
            ax.plot([r["tokens_per_problem"] for r in mine], [100 * r["accuracy"] for r in mine], style, label=label,
                    alpha=0.8)
    front = pareto(rows)
    ax.plot([r["tokens_per_problem"] for r in front], [100 * r["accuracy"] for r in front], "k--", lw=1,
            label="Pareto front")
    ax.set_xlabel("completion tokens per problem")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "accuracy against compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    path = out / "compute.png"
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def run_compute(a, items, checker) -> int:
    """The `--compute` run of `rise eval` (arguments already checked): writes compute.json/png."""
    import json
    import sys
    import time

    from app.engines.base import EngineError
    from app.engines.factory import open_engine
    from app.engines.hf import ModelLoadError
    from app.evaluation.paired import write_records

    async def go() -> list[dict]:
        engine = await open_engine(a.engine, a.model, device=a.device, max_batch_size=a.batch_size, base_url=a.base_url)
        try:
            runs = []
            for s in a.seeds:
                runs += await rollouts(engine, items, checker, turns=a.turns, parallel=a.parallel, seed=s,
                                       temperature=a.temperature, max_tokens=a.max_tokens, concurrency=a.concurrency,
                                       progress=not a.no_progress)
            return await evaluate_methods(runs, checker, a.turns, a.parallel, seeds=len(a.seeds), records=methods)
        finally:
            await engine.aclose()

    started = time.monotonic()
    methods: dict[str, list[list[float]]] = {}  # method -> one 0/1 list per seed
    try:
        rows = asyncio.run(go())
    except (ModelLoadError, EngineError) as e:
        print(f"rise eval: error: {e}", file=sys.stderr)
        return 2
    result = {"model": str(a.model), "dataset": a.dataset, "split": a.split, "problem_seed": a.problem_seed,
              "level": a.level, "n_problems": len(items), "seeds": list(a.seeds), "turns": a.turns,
              "parallel": a.parallel, "temperature": a.temperature, "seconds": round(time.monotonic() - started, 1),
              "statistics": "accuracy and se: per problem the mean over seeds, SE over problems (n = problems); "
                            f"vs_fixed: the paired difference with fixed K={a.turns} on the same problems and seeds",
              "rows": rows, "pareto": [r["method"] for r in pareto(rows)]}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "compute.json").write_text(json.dumps(result, indent=2) + "\n")
    write_records(a.out, [it.question for it in items],
                  {str(s): {m: v[i] for m, v in methods.items()} for i, s in enumerate(a.seeds)}, RECORDS)
    plot_compute(rows, a.out, f"{Path(str(a.model)).name}: {a.dataset} {a.split}, {len(items)} problems x "
                              f"{len(a.seeds)} seeds")
    width = max(len(r["method"]) for r in rows)
    for r in rows:
        d = r["vs_fixed"] or {}
        vs = f"{100 * d['diff']:+5.1f} ± {100 * d['se']:.1f} vs K={a.turns}" if d.get("se") else ""
        print(f"{r['method']:<{width}}  {100 * r['accuracy']:5.1f}% ± {100 * (r['se'] or 0):.1f}  "
              f"{r['tokens_per_problem']:7.1f} tokens  {r['turns_per_problem']:.2f} turns  {vs}")
    return 0
