"""Time one decode step of the embedded engine at several batch sizes, by path:

- `eager`: the reference step (app/engines/hf.py `_step`: masks and plan built per step, exact widths);
- `static`: the static-shape step (app/engines/cuda_graphs.py) run without graphs;
- `graphs`: the static step replayed as CUDA graphs (CUDA only);
- `compiled`: the static step's forward under `torch.compile` (the CPU question of issue 16), one
  compilation per shape; `compiled-dynamic` the same with dynamic shapes (one compilation).

A step here is the forward over every row plus the greedy choice and the one host transfer of the
tokens (what the engine pays per step before its per-row Python). Rows sit at `--context` tokens.
The paths take turns in `--blocks` blocks per batch size (a drift in the machine's speed hits all).

    python scripts/gpu_decode_step.py --device cuda --batch 1 8 32 64 --paths eager graphs --out step.json
    python scripts/gpu_decode_step.py --device cpu --batch 1 8 32 --paths eager static compiled --iters 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engines.base import SamplingParams  # noqa: E402
from app.engines.cuda_graphs import StaticDecoder, sample_on_device  # noqa: E402
from app.engines.hf import HFEngine  # noqa: E402
from app.engines.hf_batch import Plan, RunningBatch, slot_mask  # noqa: E402

PATHS = ("eager", "static", "graphs", "compiled", "compiled-dynamic")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "models" / "rise-synth"))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--paths", nargs="+", choices=PATHS, default=["eager", "graphs"])
    ap.add_argument("--context", type=int, default=200, help="tokens already in each row's slot")
    ap.add_argument("--iters", type=int, default=200, help="timed steps per path and batch size")
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None, help="write the figures here as JSON")
    a = ap.parse_args(argv)
    torch.set_grad_enabled(False)
    device = torch.device(a.device)
    engine = HFEngine(a.model, device=a.device, max_batch_size=max(a.batch), cuda_graphs="graphs" in a.paths)
    # one request: the scheduler thread has found the KV shapes (and captured its graphs) once it answers
    asyncio.run(engine.generate([[{"role": "user", "content": "1+1"}]], SamplingParams(max_tokens=4)))
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(), "model": Path(a.model).name,
              "dtype": str(engine.model.dtype).removeprefix("torch."), "context": a.context, "iters": a.iters,
              "step_ms": {}}
    steps = {}
    for path in a.paths:
        if path == "graphs" and not (engine._static and engine._static.graphs):
            report["step_ms"][path] = "no graphs (CUDA only)"
            continue
        steps[path], setup_s = make_step(path, engine, max(a.batch), device)
        report["step_ms"][path] = {"setup_s": round(setup_s, 2)}
    for n in a.batch:
        tokens, lens = [5] * n, [a.context] * n
        times: dict[str, list[float]] = {p: [] for p in steps}
        for p, step in steps.items():  # warm-up (a compiled step compiles here)
            t0 = time.perf_counter()
            for _ in range(3):
                step(tokens, lens)
            report["step_ms"][p].setdefault("warmup_s", {})[n] = round(time.perf_counter() - t0, 2)
        for _ in range(a.blocks):
            for p, step in steps.items():
                times[p] += time_steps(step, tokens, lens, max(1, a.iters // a.blocks))
        for p in steps:
            t = sorted(times[p])
            report["step_ms"][p][n] = {"median": round(statistics.median(t), 3), "p10": round(t[len(t) // 10], 3),
                                       "p90": round(t[len(t) * 9 // 10], 3)}
            print(f"{p:<17} batch {n:>3}: {report['step_ms'][p][n]} ms", flush=True)
    asyncio.run(engine.aclose())
    if a.out:
        a.out.write_text(json.dumps(report, indent=2))
    return report


def make_step(path: str, engine: HFEngine, rows: int, device: torch.device):
    """A function (tokens, lens) -> host token list for `path`, and the seconds its setup took."""
    start = time.perf_counter()
    if path == "eager":
        batch = RunningBatch(rows, engine._kv_shapes, engine.model.dtype, device, engine.info.max_context)

        def step(tokens, lens):
            width = max(lens) + 1
            batch.reserve(width, len(lens))
            pos = torch.tensor(lens, device=device).view(-1, 1)
            batch.plan = Plan(0, len(lens), pos, width)
            ids = torch.tensor(tokens, device=device).view(-1, 1)
            logits = engine._forward(ids, slot_mask(pos, width, engine.model.dtype), pos, batch.cache)
            return logits.argmax(-1).tolist()
        return step, time.perf_counter() - start
    if path == "graphs":
        dec = engine._static
    else:
        forward = engine._forward
        if path.startswith("compiled"):
            forward = torch.compile(forward, dynamic=path == "compiled-dynamic")
        dec = StaticDecoder(forward, engine._kv_shapes, engine.model.dtype, device, engine.info.max_context, rows,
                            engine.pad_id)
    return (lambda tokens, lens: sample_on_device(dec.decode(tokens, lens), None, None, None).tolist()), \
        time.perf_counter() - start


def time_steps(step, tokens: list[int], lens: list[int], iters: int) -> list[float]:
    """Milliseconds of each of `iters` steps (each ends in a host transfer: the step is done)."""
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step(tokens, lens)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


if __name__ == "__main__":
    main()
