"""Does `torch.compile` of the static decode step help on this CPU? (issue 16)

Two measurements, written together:
1. the decode step of the shipped model at batch 1, 8 and 32 by path (scripts/gpu_decode_step.py,
   the paths taking turns): the eager reference step, the static-shape step, and the static step with
   its forward under `torch.compile` (per shape, and with dynamic shapes; compile time apart);
2. what counts: rise bench's raw load (greedy 5-turn refinements at 32 clients, the raw contender's
   problems) on the raw engine with the eager step against the engine with the compiled static step
   (dynamic shapes: one compilation covers every bucket), taking turns over rounds.

    flock /tmp/rise-heavy.lock .venv/bin/python scripts/compile_static_step.py --out docs/results/compile-cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_decode_step  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--requests", type=int, default=64, help="refinements per round of the raw load (0: none)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("docs/results/compile-cpu.json"))
    a = ap.parse_args()
    paths = ("eager", "static", "compiled", "compiled-dynamic")
    report = gpu_decode_step.main(["--device", "cpu", "--batch", *map(str, a.batch), "--iters", str(a.iters),
                                   "--paths", *paths])
    ms = report["step_ms"]
    report["cpu"] = platform.processor() or platform.machine()
    report["step_speedup_over_eager"] = {p: {n: round(ms["eager"][n]["median"] / ms[p][n]["median"], 2)
                                             for n in a.batch} for p in paths[1:]}
    if a.requests:
        report["raw_load"] = raw_load(a.requests, a.rounds)
    report["command"] = ("flock /tmp/rise-heavy.lock .venv/bin/python scripts/compile_static_step.py "
                         f"--batch {' '.join(map(str, a.batch))} --iters {a.iters} --requests {a.requests} "
                         f"--rounds {a.rounds}")
    a.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report.get(k) for k in ("step_speedup_over_eager", "raw_load")}, indent=1))
    return 0


def raw_load(requests: int, rounds: int, clients: int = 32) -> dict:
    """Refined answers/s of the raw engine, eager step against compiled static step, in turns."""
    from app.answers.checker import get_checker
    from app.bench.load import closed_loop
    from app.engines.base import SamplingParams
    from app.engines.hf import HFEngine
    from app.refine.loop import refine
    from app.refine.types import RefineConfig
    from app.tasks import synthetic

    questions = [p.question for p in synthetic.problems(4321, requests * rounds + 8, synthetic.LEVELS["expert"], "test")]
    config, checker = RefineConfig(max_turns=5, sampling=SamplingParams(max_tokens=160)), get_checker("synthetic")
    engines = {"eager": HFEngine(ROOT / "models" / "rise-synth", max_batch_size=clients),
               "compiled": HFEngine(ROOT / "models" / "rise-synth", max_batch_size=clients, static_decode=True)}

    async def run() -> dict:
        out, warm = {name: [] for name in engines}, {}
        for name, e in engines.items():  # warm-up at several batch sizes; the compiled one compiles here
            t0 = time.perf_counter()
            await asyncio.gather(*[refine(e, q, checker, config) for q in questions[-8:]])
            if name == "compiled":
                e._static.forward = torch.compile(e._forward, dynamic=True)
                await asyncio.gather(*[refine(e, q, checker, config) for q in questions[-8:]])
            warm[f"{name}_warmup_s"] = round(time.perf_counter() - t0, 1)
        for r in range(rounds):
            for name in (list(engines) if r % 2 == 0 else list(engines)[::-1]):
                lo = r * requests
                done, wall = await closed_loop(lambda i, e=engines[name]: refine(e, questions[lo + i], checker, config),
                                               requests, clients)
                out[name].append(round(len(done) / wall, 3))
        for e in engines.values():
            await e.aclose()
        ratio = [round(c / e, 3) for c, e in zip(out["compiled"], out["eager"])]
        return {"clients": clients, "requests_per_round": requests, "answers_per_s": out,
                "compiled_over_eager": {"median": round(statistics.median(ratio), 2), "rounds": ratio}, **warm}

    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
