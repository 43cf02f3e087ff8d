"""Greedy refinements with and without prompt-lookup speculation, token for token, over many held-out
problems of every level (issue 31's larger count; tests/engines/test_speculative.py runs 10 a level).
One engine; each level's problems run concurrently, first without speculation, then with it (the
request's `speculative`), and every turn's text, token count and finish reason are compared.

    flock /tmp/rise-heavy.lock .venv/bin/python scripts/spec_identity.py --per-level 300 --out runs/spec-identity.json
    flock /tmp/rise-heavy.lock .venv/bin/python scripts/spec_identity.py --per-level 300 --levels hard expert
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from app.answers.checker import get_checker
from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.engines.speculative import SpecConfig
from app.refine.loop import refine
from app.refine.types import RefineConfig
from app.tasks import synthetic


async def level_run(engine: HFEngine, questions: list[str], turns: int, spec: bool) -> tuple[list, float]:
    config = RefineConfig(max_turns=turns, sampling=SamplingParams(max_tokens=160, speculative=spec))
    checker = get_checker("synthetic")
    start = time.perf_counter()
    results = await asyncio.gather(*[refine(engine, q, checker, config) for q in questions])
    wall = time.perf_counter() - start
    return [[(t.text, t.samples[0].completion_tokens, t.samples[0].finish_reason) for t in r.turns]
            for r in results], wall


async def main(a) -> dict:
    engine = HFEngine(a.model, max_batch_size=a.batch, speculative=SpecConfig(enabled=False))
    report = {"model": a.model, "per_level": a.per_level, "turns": a.turns, "levels": {}}
    try:
        for name in a.levels:
            level = synthetic.LEVELS[name]
            questions = [p.question for p in synthetic.problems(a.seed, a.per_level, level, "test")]
            plain, t_plain = await level_run(engine, questions, a.turns, False)
            spec, t_spec = await level_run(engine, questions, a.turns, True)
            differ = [i for i, (x, y) in enumerate(zip(plain, spec)) if x != y]
            report["levels"][name] = {"problems": len(questions), "turns": sum(map(len, plain)),
                                      "differing_problems": len(differ), "first_differing": differ[:5],
                                      "wall_s_plain": round(t_plain, 1), "wall_s_spec": round(t_spec, 1)}
            print(name, report["levels"][name], flush=True)
    finally:
        await engine.aclose()
    report["identical"] = all(v["differing_problems"] == 0 for v in report["levels"].values())
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/rise-synth")
    ap.add_argument("--per-level", type=int, default=300)
    ap.add_argument("--levels", nargs="+", choices=list(synthetic.LEVELS), default=list(synthetic.LEVELS))
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    out = asyncio.run(main(args))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps({"identical": out["identical"]}))
    raise SystemExit(0 if out["identical"] else 1)
