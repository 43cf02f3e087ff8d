"""The same synthetic problems through the embedded engine and through vLLM: wall time, tokens/s,
prefix-cache hit rate. Writes runs/engines.json.

    python scripts/compare_engines.py --engines hf --out runs/engines-hf.json
    python scripts/compare_engines.py --engines vllm --out runs/engines-vllm.json

Run one engine per process: vLLM's engine core died (EngineDeadError) when it started in a process
where the embedded engine had just run; started alone it is fine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import time
from pathlib import Path

from app.answers.checker import get_checker
from app.engines.factory import open_engine
from app.refine.loop import refine
from app.refine.types import RefineConfig
from app.engines.base import SamplingParams
from app.tasks import synthetic


def vllm_prefix_cache() -> dict:
    from prometheus_client import REGISTRY

    values = {}
    for fam in REGISTRY.collect():
        for s in fam.samples:
            if s.name in ("vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"):
                values[s.name] = values.get(s.name, 0.0) + s.value
    hits, queries = values.get("vllm:prefix_cache_hits_total", 0.0), values.get("vllm:prefix_cache_queries_total", 0.0)
    return {"prefix_cache_hit_tokens": hits, "prefix_cache_query_tokens": queries,
            "prefix_cache_hit_rate": round(hits / queries, 4) if queries else None}


async def run(engine_name: str, model: str, problems, turns: int, window: str) -> dict:
    engine = await open_engine(engine_name, model, max_batch_size=64)
    checker = get_checker("synthetic")
    sem = asyncio.Semaphore(64)

    async def one(i, p):
        cfg = RefineConfig(max_turns=turns, window=window, sampling=SamplingParams(temperature=0.7, max_tokens=160, seed=i))
        async with sem:
            return await refine(engine, p.question, checker, cfg)

    await one(0, problems[0])  # warm-up
    start = time.monotonic()
    results = await asyncio.gather(*[one(i, p) for i, p in enumerate(problems)])
    wall = time.monotonic() - start
    completion = sum(r.completion_tokens for r in results)
    prompt = sum(r.prompt_tokens for r in results)
    out = {"engine": engine_name, "problems": len(problems), "turns": turns, "window": window,
           "wall_s": round(wall, 1), "completion_tokens": completion, "prompt_tokens": prompt,
           "completion_tokens_per_s": round(completion / wall, 1), "refinements_per_s": round(len(problems) / wall, 2)}
    if engine_name == "vllm":
        out.update(vllm_prefix_cache())
    await engine.aclose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/base-synth")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--window", default="full", choices=["full", "last"])
    ap.add_argument("--engines", nargs="+", default=["hf", "vllm"])
    ap.add_argument("--out", type=Path, default=Path("runs/engines.json"))
    a = ap.parse_args()
    problems = synthetic.problems(4321, a.problems, synthetic.LEVELS["expert"])
    rows = [asyncio.run(run(name, a.model, problems, a.turns, a.window)) for name in a.engines]
    report = {"machine": f"{platform.machine()} {platform.processor()} ({__import__('os').cpu_count()} cores)", "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
