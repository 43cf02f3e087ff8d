"""`rise eval`: the refinement loop over a dataset, the paper's metrics, and a plot.

    rise eval --model models/rise-synth --dataset synthetic --limit 1000 --seeds 0 1 --out runs/eval-rise
    rise eval --model models/rise-synth --dataset gsm8k --limit 50 --turns 3 --out runs/eval-gsm8k

Writes DIR/metrics.json and DIR/turns.png. With --compute: accuracy against tokens for fixed K,
parallel N, the early-stopping rules and confidence votes (DIR/compute.json, DIR/compute.png):

    rise eval --compute --limit 1000 --seeds 0 1 --out runs/compute
    rise eval --compute --split train --problem-seed 99 --limit 300 --out runs/compute-val   # tuning
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.cli_args import positive_int, seed, temperature, writable_dir
from app.config import default_model, model_problem
from app.engines.factory import ENGINES
from app.tasks import datasets
from app.tasks.synthetic import LEVELS


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise eval", description="Evaluate a model with RISE's metrics.")
    ap.add_argument("--model", default=str(default_model()), help="an HF model directory (for --engine hf/vllm)")
    ap.add_argument("--dataset", choices=datasets.DATASETS, default="synthetic")
    ap.add_argument("--level", choices=list(LEVELS), default="expert", help="synthetic difficulty (expert: the model cards' level)")
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
    ap.add_argument("--split", choices=["test", "train"], default="test",
                    help="synthetic: the held-out problems (test) or the training side (train, for tuning)")
    ap.add_argument("--problem-seed", type=seed, default=1234, help="synthetic: which problems are drawn")
    ap.add_argument("--parallel", type=positive_int, default=5, help="parallel samples per problem (m5@t1, --compute)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
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
    from app.evaluation.plot import plot_turns
    from app.evaluation.runner import EvalConfig, Item, evaluate

    try:
        items = [Item(q, ref) for q, ref in datasets.load(a.dataset, a.split, a.limit, seed=a.problem_seed,
                                                          level=a.level)]
    except (OSError, ValueError) as e:  # e.g. GSM8K's file missing: the message says to set RISE_DATA_DIR
        ap.error(str(e))
    checker = get_checker(datasets.FAMILY[a.dataset])
    cfg = EvalConfig(turns=a.turns, seeds=tuple(a.seeds), temperature=a.temperature, max_tokens=a.max_tokens,
                     window=a.window, concurrency=a.concurrency, parallel_samples=a.parallel)
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
    result.update(model=str(a.model), dataset=a.dataset, level=a.level if a.dataset == "synthetic" else None,
                  engine=a.engine)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    plot_turns(result, a.out)
    print(format_summary(result))
    return 0


def format_summary(result: dict) -> str:
    s = result["summary"]
    keys = [k for k in s if k.startswith(("p1@", "m1@", "m5@", "pass@"))]
    return "\n".join(f"{k:>8}: {100 * s[k]['mean']:5.1f}% ± {100 * s[k]['se']:.1f} (n={s[k]['n']})" for k in keys)


if __name__ == "__main__":
    raise SystemExit(main())
