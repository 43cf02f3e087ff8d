"""`rise bench`: refined answers per second of rise-serve against a naive loop and the raw engine.

    rise bench --out runs/bench                  # 32 clients, 5-turn refinements (about 3 minutes here)
    rise bench --quick --out runs/bench-quick    # about a minute
    make bench

Every contender refines the same held-out expert problems, greedily, 5 turns without an oracle
(RISE's protocol), on the same machine and never two at once (they would share the cores): naive
first, then raw and rise-serve taking turns over `--rounds` rounds (a shared host's speed drifts
by ±15% over minutes; alternating makes the drift hit both sides of their ratio alike), then vLLM.
Writes DIR/bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import time
from pathlib import Path

from app.bench.load import closed_loop, summarize
from app.cli_args import model_dir, non_negative_int, positive_float, positive_int, seed, writable_dir
from app.config import default_model
from app.tasks import synthetic


CONTENDERS = ("naive", "raw", "rise-serve", "rise-serve-agree", "rise-serve-vllm")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise bench", description="Throughput of rise-serve against baselines.")
    ap.add_argument("--model", type=model_dir, default=str(default_model()), help="an HF model directory")
    ap.add_argument("--clients", type=positive_int, default=32, help="concurrent clients (closed loop)")
    ap.add_argument("--requests", type=positive_int, default=128, help="refinements per contender (naive: --naive-requests)")
    ap.add_argument("--naive-requests", type=positive_int, default=8, help="the naive loop runs one at a time: fewer suffice")
    ap.add_argument("--one-client-requests", type=non_negative_int, default=8, help="requests at one client (time to first token)")
    ap.add_argument("--turns", type=positive_int, default=5)
    ap.add_argument("--max-tokens", type=positive_int, default=160)
    ap.add_argument("--level", choices=list(synthetic.LEVELS), default="expert")
    ap.add_argument("--seed", type=seed, default=4321, help="which held-out problems")
    ap.add_argument("--max-batch-size", type=positive_int, default=32, help="the embedded engine's batch limit")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS),
                    help="rise-serve-vllm runs only where vLLM is installed")
    ap.add_argument("--duration", type=positive_float, default=None,
                    help="seconds: run rise-serve for this long instead of --requests (memory over time)")
    ap.add_argument("--rounds", type=positive_int, default=2,
                    help="raw and rise-serve take turns in this many rounds of their load, so that a drift in the "
                         "machine's speed (a shared host) hits both alike; naive runs before them, vLLM after")
    ap.add_argument("--quick", action="store_true", help="8 clients, a few requests: about a minute")
    ap.add_argument("--out", type=writable_dir, default="runs/bench", help="output directory (checked before the run)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    a.model = str(a.model)  # into JSON and a child's environment
    if a.quick:
        a.clients, a.requests, a.naive_requests, a.one_client_requests = 8, 16, 2, 3
    warm = 2
    n = max(a.requests, a.naive_requests) + a.one_client_requests + warm
    if a.duration:
        n = max(n, 20_000)
    questions = [p.question for p in synthetic.problems(a.seed, n, synthetic.LEVELS[a.level], "test")]
    main_q = questions[: n - a.one_client_requests - warm]
    one_q = questions[len(main_q): len(main_q) + a.one_client_requests]
    warm_q = questions[-warm:]
    report = {"machine": machine(a.device), "model": a.model,
              "settings": {k: getattr(a, k) for k in ("clients", "requests", "naive_requests", "one_client_requests", "turns",
                                                       "max_tokens", "level", "seed", "max_batch_size", "duration", "rounds")},
              "contenders": {}}
    answers = {}
    common = dict(turns=a.turns, max_tokens=a.max_tokens, device=a.device)
    a.out.mkdir(parents=True, exist_ok=True)
    names = list(a.contenders)
    if "rise-serve-vllm" in names and importlib.util.find_spec("vllm") is None:
        print("rise-serve-vllm: skipped (vLLM is not installed)")
        names.remove("rise-serve-vllm")
    # naive apart: its generate calls run on another thread of this process than the raw engine's, and a
    # second thread running torch ops slows the first (two OpenMP teams)
    together = [n for n in names if n in ("raw", "rise-serve", "rise-serve-agree") and not a.duration]
    groups = [[n] for n in names if n not in together]
    if together:
        groups.insert(1 if groups and groups[0] == ["naive"] else 0, together)
    for group in groups:
        print(f"{', '.join(group)}: running ...", flush=True)
        results = asyncio.run(run_contenders(group, a, main_q, one_q, warm_q, common))
        for name, (result, answers[name]) in results.items():
            report["contenders"][name] = result
        compare(report, answers)
        (a.out / "bench.json").write_text(json.dumps(report, indent=2))  # after each group
    print(table(report))
    print(f"wrote {a.out / 'bench.json'}")
    return 0


def compare(report: dict, answers: dict) -> None:
    """The top-level ratios, from whichever contenders have run."""
    c = report["contenders"]
    ratio = lambda x, y: round(c[x]["answers_per_s"] / c[y]["answers_per_s"], 2) if x in c and y in c else None  # noqa: E731
    report["vs_naive"], report["vs_raw"] = ratio("rise-serve", "naive"), ratio("rise-serve", "raw")
    one = c.get("rise-serve", {}).get("one_client", {}).get("ttft_by_turn_s") or []
    report["ttft_turn5_over_turn1"] = round(one[-1] / one[0], 2) if len(one) >= 2 and one[0] else None
    if "naive" in answers and "rise-serve" in answers:  # same work: the same greedy answers
        shared = list(zip(answers["naive"], answers["rise-serve"]))
        report["same_final_answer_as_naive"] = round(sum(x == y for x, y in shared) / len(shared), 3)


async def run_contenders(names: list[str], a, main_q: list[str], one_q: list[str], warm_q: list[str], common: dict):
    """Start the contenders, warm each up, then run their loads in `a.rounds` alternating rounds
    (one round when there is a single contender); returns {name: (summary, final answers)}."""
    from app.bench.contenders import Served

    questions = main_q + one_q + warm_q
    contenders = {}
    first_warm = len(main_q) + len(one_q)
    try:
        for name in names:
            contenders[name] = await asyncio.to_thread(_open, name, a, questions, common)
            await asyncio.gather(*[contenders[name].send(first_warm + i) for i in range(len(warm_q))])  # not timed
        served = {n: c for n, c in contenders.items() if isinstance(c, Served)}
        rss_start = {n: c.rss_mb() for n, c in served.items()}
        timelines: dict[str, list] = {n: [] for n in served}
        watches = [asyncio.create_task(_watch_memory(c, timelines[n], a.duration)) for n, c in served.items()]
        rounds = a.rounds if len(names) > 1 else 1
        runs = {n: ([], 0.0) for n in names}
        for r in range(rounds):
            for name, c in contenders.items():
                total, clients = (a.naive_requests, 1) if name == "naive" else (a.requests, a.clients)
                lo, hi = total * r // rounds, total * (r + 1) // rounds
                duration = a.duration if name in served else None
                outcomes, wall = await closed_loop(lambda i, c=c, lo=lo: c.send(lo + i), hi - lo, clients, duration)
                runs[name] = (runs[name][0] + outcomes, runs[name][1] + wall)
        for w in watches:
            w.cancel()
        results = {}
        for name, c in contenders.items():
            outcomes, wall = runs[name]
            result = summarize(outcomes, wall, 1 if name == "naive" else a.clients)
            if name != "naive" and one_q:  # time to first token per turn with nobody else around
                offset = len(main_q)
                one, one_wall = await closed_loop(lambda i, c=c: c.send(offset + i), len(one_q), 1)
                result["one_client"] = summarize(one, one_wall, 1)
            if name in served:
                result["rss_start_mb"], result["rss_end_mb"] = rss_start[name], c.rss_mb()
                result["rss_peak_mb"], result["rss_timeline_mb"] = c.rss_mb("VmHWM"), timelines[name]
            results[name] = (result, [o.answer for o in outcomes])
        return results
    finally:
        for c in contenders.values():
            await c.aclose()


def _open(name: str, a, questions: list[str], common: dict):
    from app.bench.contenders import Naive, Raw, Served

    if name == "naive":
        return Naive(a.model, questions, **common)
    if name == "raw":
        return Raw(a.model, questions, max_batch_size=a.max_batch_size, **common)
    if name in ("rise-serve", "rise-serve-agree", "rise-serve-vllm"):
        return Served(a.model, questions, engine="vllm" if name == "rise-serve-vllm" else "hf",
                      max_batch_size=a.max_batch_size, clients=a.clients,
                      early_stop="agree" if name == "rise-serve-agree" else "none", **common)
    raise SystemExit(f"unknown contender {name!r}")


async def _watch_memory(contender, timeline: list, duration: float | None) -> None:
    """The server's resident memory every few seconds: [seconds since start, MiB]."""
    start, every = time.perf_counter(), max(5.0, (duration or 60) / 40)
    while True:
        timeline.append((round(time.perf_counter() - start, 1), contender.rss_mb()))
        await asyncio.sleep(every)


def machine(device: str | None) -> dict:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "device": device or ("cuda" if torch.cuda.is_available() else "cpu")}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def table(report: dict) -> str:
    rows = [f"{'contender':<18}{'clients':>8}{'answers/s':>11}{'tokens/s':>10}{'tok/ans':>9}{'p50 s':>8}{'p99 s':>8}"
            "  ttft by turn (s)"]
    for name, r in report["contenders"].items():
        ttft = " ".join(f"{t:.3f}" if t is not None else "-" for t in r["ttft_by_turn_s"])
        rows.append(f"{name:<18}{r['clients']:>8}{r['answers_per_s']:>11.2f}{r['tokens_per_s']:>10.0f}"
                    f"{r.get('tokens_per_answer', 0):>9.0f}{r['p50_s']:>8.2f}{r['p99_s']:>8.2f}  {ttft}")
        if "one_client" in r:
            o = r["one_client"]
            ttft = " ".join(f"{t:.3f}" if t is not None else "-" for t in o["ttft_by_turn_s"])
            rows.append(f"{'  at one client':<18}{1:>8}{o['answers_per_s']:>11.2f}{o['tokens_per_s']:>10.0f}"
                        f"{o.get('tokens_per_answer', 0):>9.0f}{o['p50_s']:>8.2f}{o['p99_s']:>8.2f}  {ttft}")
    rows.append(f"rise-serve / naive: {report['vs_naive']}x   rise-serve / raw: {report['vs_raw']}x   "
                f"turn-5 / turn-1 time to first token (one client): {report['ttft_turn5_over_turn1']}")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
