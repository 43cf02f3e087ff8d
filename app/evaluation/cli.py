"""`rise eval`: the refinement loop over a dataset, the paper's metrics, and a plot.

    rise eval --model models/rise-synth --dataset synthetic --limit 1000 --seeds 0 1 --out runs/eval-rise
    rise eval --model models/rise-synth --split validation --limit 500 --out runs/eval-val   # tuning
    rise eval --model models/rise-synth --dataset gsm8k --limit 50 --turns 3 --out runs/eval-gsm8k

Splits: choose settings (τ, learning rate, thresholds …) on `--split validation` (or `train`) only;
model cards report `--split test` (the default). The synthetic splits are disjoint by structure and
each has its own default problem seed (test 1234, validation 4321, train 1234); GSM8K has train and
test, MATH-500 test only (any other split: exit 2).

Writes DIR/metrics.json (summary over problems and seeds: n = problems, standard error over the
problems of each problem's mean across seeds; the flow; tokens per problem of each method; paired
differences such as m1@tK − m5@t1), DIR/per_problem.json (0/1 per problem, seed and metric, for
`python -m app.evaluation.report A/metrics.json B/metrics.json`) and DIR/turns.png. p1@tk comes from
the no-oracle run's turns (the oracle run would repeat them; `--oracle-run` runs it and checks).

With --compute: accuracy against tokens for fixed K, parallel N, the early-stopping rules and
confidence votes (DIR/compute.json, DIR/compute.png):

    rise eval --compute --limit 1000 --seeds 0 1 --out runs/compute
    rise eval --compute --split validation --limit 300 --out runs/compute-val   # tuning
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.cli_args import DefaultsHelpFormatter, positive_int, seed, temperature, writable_dir
from app.config import default_model, model_problem
from app.engines.factory import ENGINES
from app.tasks import datasets
from app.tasks.synthetic import LEVELS


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise eval", description="Evaluate a model with RISE's metrics.",
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--model", default=str(default_model()), help="an HF model directory (for --engine hf/vllm)")
    ap.add_argument("--dataset", choices=datasets.DATASETS, default="synthetic")
    ap.add_argument("--level", choices=list(LEVELS), default="expert",
                    help="synthetic and inverse difficulty (expert: the model cards' level)")
    ap.add_argument("--limit", type=positive_int, default=1000)
    ap.add_argument("--turns", type=positive_int, default=5)
    ap.add_argument("--seeds", type=seed, nargs="+", default=[0, 1], help="the sampling seeds to run (e.g. 0 1: two seeds)")
    ap.add_argument("--temperature", type=temperature, default=0.7)
    ap.add_argument("--max-tokens", type=positive_int, default=160)
    ap.add_argument("--window", choices=["last", "full"], default="last")
    ap.add_argument("--engine", choices=ENGINES, default="hf")
    ap.add_argument("--base-url", default=None, help="for --engine openai")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=positive_int, default=64, help="embedded engine batch limit")
    ap.add_argument("--concurrency", type=positive_int, default=256)
    ap.add_argument("--out", type=writable_dir, required=True, help="output directory (checked before the run)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--compute", action="store_true",
                    help="accuracy against tokens for fixed K, parallel N, early stopping and confidence votes")
    ap.add_argument("--split", choices=datasets.ALL_SPLITS, default="test",
                    help="test: what cards report; validation (or train): where settings are chosen "
                         "(GSM8K: train/test; MATH-500: test)")
    ap.add_argument("--problem-seed", type=seed, default=None,
                    help="synthetic: which problems are drawn (default: test 1234, validation 4321, train 1234)")
    ap.add_argument("--oracle-run", action="store_true",
                    help="also run the oracle loop (p1 is otherwise computed from the no-oracle run) and check them equal")
    ap.add_argument("--parallel", type=positive_int, default=5, help="parallel samples per problem (m5@t1, --compute)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    try:
        datasets.check_split(a.dataset, a.split)
    except ValueError as e:
        ap.error(str(e))
    if a.problem_seed is None:
        a.problem_seed = datasets.default_problem_seed(a.split)
    if a.engine == "openai":
        from app.engines.openai_remote import check_base_url

        try:
            check_base_url(a.base_url)
        except ValueError as e:
            ap.error(str(e))
    elif problem := model_problem(a.model):
        ap.error(problem)
    from app.answers.checker import get_checker
    from app.engines.base import EngineError
    from app.engines.factory import open_engine
    from app.engines.hf import ModelLoadError
    from app.evaluation.paired import write_records
    from app.evaluation.plot import plot_turns
    from app.evaluation.runner import EvalConfig, Item, evaluate

    try:
        items = [Item(q, ref) for q, ref in datasets.load(a.dataset, a.split, a.limit, seed=a.problem_seed,
                                                          level=a.level)]
    except (OSError, ValueError) as e:  # e.g. GSM8K's file missing: the message says to set RISE_DATA_DIR
        ap.error(str(e))
    checker = get_checker(datasets.FAMILY[a.dataset])
    cfg = EvalConfig(turns=a.turns, seeds=tuple(a.seeds), temperature=a.temperature, max_tokens=a.max_tokens,
                     window=a.window, concurrency=a.concurrency, parallel_samples=a.parallel, oracle_run=a.oracle_run)
    if a.compute:
        from app.evaluation.compute import run_compute

        return run_compute(a, items, checker)

    async def go() -> dict:
        engine = await open_engine(a.engine, a.model, device=a.device, max_batch_size=a.batch_size, base_url=a.base_url)
        try:
            return await evaluate(engine, items, checker, cfg, progress=not a.no_progress)
        finally:
            await engine.aclose()

    try:
        result = asyncio.run(go())
    except (ModelLoadError, EngineError) as e:  # a model that does not load, an upstream that does not answer
        print(f"rise eval: error: {e}", file=sys.stderr)
        return 2
    records = result.pop("records")
    synthetic = a.dataset in datasets.GENERATED
    result.update(model=str(a.model), dataset=a.dataset, split=a.split,
                  problem_seed=a.problem_seed if synthetic else None, level=a.level if synthetic else None,
                  engine=a.engine)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    write_records(a.out, [it.question for it in items], records)
    plot_turns(result, a.out)
    print(format_summary(result))
    return 0


def format_summary(result: dict) -> str:
    """The headline figures, the flow, the tokens and the paired differences, for the terminal."""
    s = result["summary"]
    keys = [k for k in s if k.startswith(("p1@", "m1@", "m5@", "pass@"))]
    lines = [f"{k:>8}: {100 * s[k]['mean']:5.1f}% ± {_pct(s[k]['se'])} "
             f"(n={s[k]['n']} problems × {s[k].get('seeds', 1)} seeds)" for k in keys]
    flow = result.get("flow", {})
    if flow:
        acc = flow["turn_accuracy"]
        lines.append("turn k's own accuracy (no oracle): " + ", ".join(f"{t} {100 * v['mean']:.1f}" for t, v in acc.items()))
        for step, v in flow.items():
            if step != "turn_accuracy":
                lines.append(f"  {step}: wrong→right {100 * v['wrong_to_right']['mean']:.1f}%, right→wrong "
                             f"{100 * v['right_to_wrong']['mean']:.1f}%, answer changed {100 * v['answer_changed']['mean']:.1f}%")
    for k, v in result.get("tokens", {}).items():
        lines.append(f"tokens {k:>6}: {v['total']:8.1f} per problem ({v['completion']:.1f} completion)")
    for k, v in result.get("paired", {}).items():
        z = "–" if v["z"] is None else f"{v['z']:.2f}"
        lines.append(f"paired {k}: {100 * v['diff']:+.1f} ± {_pct(v['se'])} points (z = {z}, n={v['n']} problems)")
    return "\n".join(lines)


def _pct(se: float | None) -> str:
    return "–" if se is None else f"{100 * se:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
