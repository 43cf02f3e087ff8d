"""The gateway cost: rise-serve's own CPU per 5-turn refinement when the model runs elsewhere.

    .venv/bin/python -m app.bench.gateway_cost --out runs/gateway-cost      # about 2 minutes here
    .venv/bin/python -m app.bench.gateway_cost --refinements 4 --clients 2 --out runs/gw-tiny

Starts a simulated OpenAI-compatible upstream (app/bench/sim_upstream.py: a fixed answer at a
fixed tokens/s per request, no model) and a real `rise serve --engine openai --base-url` in front
of it, each in its own process; drives `--clients` concurrent 5-turn refinements without an oracle
(`/v1/refine`, every turn gets RISE's feedback, majority vote), once with JSON answers and once
streamed (`stream: true`), after a few warm-up refinements. rise-serve's CPU time is read from its
process and its children (answer-check workers) before and after each load, so what the upstream
and the load generator spend is not counted. Writes DIR/gateway-cost.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from app.api import launch
from app.bench.report import machine
from app.cli_args import DefaultsHelpFormatter, non_negative_int, positive_float, positive_int, writable_dir

QUESTION = "Ana has {n} marbles. She ends up with 26 times as many. Then she buys 91 more. How many marbles does Ana have now?"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m app.bench.gateway_cost", formatter_class=DefaultsHelpFormatter,
                                 description="rise-serve's CPU per refinement in front of a simulated upstream.")
    ap.add_argument("--refinements", type=positive_int, default=400, help="measured refinements per mode")
    ap.add_argument("--clients", type=positive_int, default=32, help="concurrent clients (closed loop)")
    ap.add_argument("--turns", type=positive_int, default=5)
    ap.add_argument("--tokens-per-turn", type=positive_int, default=54,
                    help="the upstream's answer length (54: the shipped rise-synth's 268 tokens per 5-turn answer)")
    ap.add_argument("--tokens-per-s", type=positive_float, default=500.0, help="the upstream's speed per request")
    ap.add_argument("--warmup", type=non_negative_int, default=8, help="unmeasured refinements before each mode")
    ap.add_argument("--modes", nargs="+", choices=["json", "stream"], default=["json", "stream"])
    ap.add_argument("--out", type=writable_dir, default="runs/gateway-cost", help="output directory")
    return ap


def cpu_seconds(proc: psutil.Process) -> float:
    """User + system CPU of the process, its reaped children and its live descendants."""
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in proc.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.NoSuchProcess:
            pass
    return total


async def counter(client: httpx.AsyncClient, name: str) -> float:
    """The sum of a counter's samples on the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get("/metrics")).text
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == name
               for s in f.samples if s.name == name + "_total")


async def refine_once(client: httpx.AsyncClient, i: int, turns: int, stream: bool) -> dict:
    """One refinement: its latency, turns and completion tokens (JSON, or the stream's result event)."""
    body = {"question": QUESTION.format(n=10 + i % 90), "max_turns": turns, "max_tokens": 512, "temperature": 0,
            "early_stop": "none", "stream": stream}
    start = time.perf_counter()
    if not stream:
        r = await client.post("/v1/refine", json=body)
        r.raise_for_status()
        result = r.json()
    else:
        result, event = None, None
        async with client.stream("POST", "/v1/refine", json=body) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line:  # the end of one event
                    event = None
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "result":
                    result = json.loads(line[6:])
                elif line.startswith("data: ") and event == "error":
                    raise RuntimeError(f"refinement {i} failed: {line[6:]}")
        if result is None:
            raise RuntimeError(f"refinement {i}: the stream ended without a result")
    return {"latency_s": time.perf_counter() - start, "turns": len(result["turns"]),
            "completion_tokens": result["usage"]["completion_tokens"]}


async def run_mode(url: str, upstream: str, server: psutil.Process, a: argparse.Namespace, stream: bool) -> dict:
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=a.clients + 4)) as client, \
            httpx.AsyncClient(base_url=upstream, timeout=30) as up:
        await asyncio.gather(*[refine_once(client, i, a.turns, stream) for i in range(a.warmup)])
        counted0, calls0 = await counter(client, "rise_refinements"), (await up.get("/stats")).json()["chat_requests"]
        cpu0, start = cpu_seconds(server), time.perf_counter()
        todo = iter(range(a.refinements))
        done: list[dict] = []
        sent = 0

        async def one_client() -> None:
            nonlocal sent
            for i in todo:
                sent += 1
                done.append(await refine_once(client, i, a.turns, stream))

        await asyncio.gather(*[one_client() for _ in range(a.clients)])
        wall, cpu = time.perf_counter() - start, cpu_seconds(server) - cpu0
        counted = await counter(client, "rise_refinements") - counted0
        calls = (await up.get("/stats")).json()["chat_requests"] - calls0
    lat = np.array([d["latency_s"] for d in done])
    ideal = a.turns * a.tokens_per_turn / a.tokens_per_s
    return {
        "mode": "stream" if stream else "json",
        "refinements_sent": sent,
        "refinements_answered": len(done),
        "refinements_counted": int(counted),  # the server's rise_refinements_total over the load
        "upstream_calls": calls,
        "turns_per_refinement": round(sum(d["turns"] for d in done) / len(done), 3),
        "completion_tokens_per_refinement": round(sum(d["completion_tokens"] for d in done) / len(done), 1),
        "server_cpu_s": round(cpu, 3),
        "cpu_ms_per_refinement": round(1000 * cpu / len(done), 2),
        "cpu_ms_per_turn": round(1000 * cpu / max(calls, 1), 3),
        "refinements_per_s_per_core": round(len(done) / cpu, 1) if cpu > 0 else None,
        "server_cores_busy": round(cpu / wall, 3),
        "wall_s": round(wall, 2),
        "refinements_per_s": round(len(done) / wall, 2),
        "p50_s": round(float(np.percentile(lat, 50)), 3),
        "p99_s": round(float(np.percentile(lat, 99)), 3),
        "upstream_only_latency_s": round(ideal, 3),
    }


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    up_proc, upstream, up_log = launch.spawn(
        log_name="sim-upstream", command=[sys.executable, "-m", "app.bench.sim_upstream"],
        args=["--tokens-per-s", str(a.tokens_per_s), "--tokens-per-turn", str(a.tokens_per_turn)])
    server = None
    try:
        launch.wait_until_answers(up_proc, upstream, up_log, "/v1/models", timeout=60)
        server, url, _log = launch.start({"RISE_ENGINE": "openai", "RISE_BASE_URL": f"{upstream}/v1",
                                          "RISE_MAX_IN_FLIGHT": str(max(64, a.clients)), "RISE_LOG_LEVEL": "warning"},
                                         timeout=300, log_name="rise-gateway")
        ps = psutil.Process(server.pid)
        modes = [asyncio.run(run_mode(url, upstream, ps, a, m == "stream")) for m in a.modes]
    finally:
        if server is not None:
            launch.stop(server, 30)
        launch.stop(up_proc, 10)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m app.bench.gateway_cost " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine("cpu"),
        "upstream": {"tokens_per_s_per_request": a.tokens_per_s, "tokens_per_turn": a.tokens_per_turn,
                     "kind": "simulated (app/bench/sim_upstream.py), one token per stream chunk"},
        "clients": a.clients, "turns": a.turns, "warmup": a.warmup,
        "modes": modes,
    }
    path = Path(a.out) / "gateway-cost.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    for m in modes:
        print(f"{m['mode']:6} {m['refinements_answered']} refinements: {m['cpu_ms_per_refinement']} ms CPU each, "
              f"{m['refinements_per_s_per_core']} refinements/s per core, {m['refinements_per_s']}/s at "
              f"{m['server_cores_busy']} cores busy, p50 {m['p50_s']} s (upstream alone {m['upstream_only_latency_s']} s)")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
