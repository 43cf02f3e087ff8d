"""`rise bench`: refined answers per second of rise-serve against a naive loop and the raw engines.

    rise bench --out runs/bench                  # 32 clients, 5-turn refinements (about 6 minutes here)
    rise bench --quick --out runs/bench-quick    # about a minute
    make bench

Every contender refines the same held-out expert problems, greedily, 5 turns without an oracle
(RISE's protocol), on the same machine and never two at once (they would share the cores): all of
them take turns over `--rounds` rounds (a shared host's speed drifts by ±15% over minutes;
alternating makes a drift hit every side of a ratio alike), the naive loop with `--naive-requests`
per round, and each ratio (rise-serve / naive, rise-serve / raw, rise-serve-vllm / raw-vllm) is the
median of the rounds' ratios, reported with its spread. Writes DIR/bench.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import time
from dataclasses import dataclass

from app.bench.load import closed_loop, summarize
from app.bench.report import compare, machine, saturation, table
from app.cli_args import DefaultsHelpFormatter, model_dir, non_negative_int, positive_float, positive_int, seed, writable_dir
from app.config import default_model
from app.tasks import synthetic


CONTENDERS = ("naive", "raw", "raw-eager", "raw-spec", "rise-serve", "rise-serve-agree", "rise-serve-spec", "raw-vllm",
              "rise-serve-vllm")
VLLM = ("raw-vllm", "rise-serve-vllm")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise bench", description="Throughput of rise-serve against baselines.",
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--model", type=model_dir, default=str(default_model()), help="an HF model directory")
    ap.add_argument("--clients", type=positive_int, default=32, help="concurrent clients (closed loop)")
    ap.add_argument("--requests", type=positive_int, default=192, help="refinements per contender, over all rounds")
    ap.add_argument("--naive-requests", type=positive_int, default=32,
                    help="refinements of the naive loop per round (it runs one at a time)")
    ap.add_argument("--one-client-requests", type=non_negative_int, default=8, help="requests at one client (time to first token)")
    ap.add_argument("--turns", type=positive_int, default=5)
    ap.add_argument("--max-tokens", type=positive_int, default=160)
    ap.add_argument("--level", choices=list(synthetic.LEVELS), default="expert")
    ap.add_argument("--seed", type=seed, default=4321, help="which held-out problems")
    ap.add_argument("--max-batch-size", type=positive_int, default=32, help="the embedded engine's batch limit")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if present)")
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS,
                    default=["naive", "raw", "rise-serve", "rise-serve-agree", "raw-vllm", "rise-serve-vllm"],
                    help="the vLLM ones run only where vLLM is installed; raw-eager is raw with CUDA graphs off")
    ap.add_argument("--duration", type=positive_float, default=None,
                    help="seconds: run rise-serve for this long instead of --requests (memory over time)")
    ap.add_argument("--rounds", type=positive_int, default=3,
                    help="the contenders take turns in this many rounds of their load (the order reversed every "
                         "other round), so that a drift in the machine's speed hits all alike; each ratio is the "
                         "median over rounds")
    ap.add_argument("--sweep-clients", type=positive_int, nargs="*", default=[],
                    help="after the rounds, run --sweep-contenders again at each of these client counts "
                         "(where throughput saturates)")
    ap.add_argument("--sweep-contenders", nargs="+", choices=CONTENDERS, default=["rise-serve"])
    ap.add_argument("--sweep-requests", type=positive_int, default=128, help="refinements per sweep point")
    ap.add_argument("--quick", action="store_true", help="8 clients, a few requests: about a minute")
    ap.add_argument("--out", type=writable_dir, default="runs/bench", help="output directory (checked before the run)")
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    a = ap.parse_args(argv)
    a.model = str(a.model)  # into JSON and a child's environment
    if a.quick:
        a.clients, a.requests, a.naive_requests, a.one_client_requests, a.rounds = 8, 16, 2, 3, 2
    warm = 2
    sweep = a.sweep_requests * len(a.sweep_clients)
    n = max(a.requests, a.naive_requests * a.rounds) + a.one_client_requests + sweep + warm
    if a.duration:
        n = max(n, 20_000)
    questions = [p.question for p in synthetic.problems(a.seed, n, synthetic.LEVELS[a.level], "test")]
    load = Load(questions, a.one_client_requests, sweep, warm)
    report = {"machine": machine(a.device), "model": a.model,
              "settings": {k: getattr(a, k) for k in ("clients", "requests", "naive_requests", "one_client_requests", "turns",
                                                       "max_tokens", "level", "seed", "max_batch_size", "duration", "rounds",
                                                       "sweep_clients", "sweep_requests")},
              "contenders": {}}
    answers = {}
    common = dict(turns=a.turns, max_tokens=a.max_tokens, device=a.device)
    a.out.mkdir(parents=True, exist_ok=True)
    names = list(a.contenders)
    if importlib.util.find_spec("vllm") is None:
        for name in [n for n in names if n in VLLM]:
            print(f"{name}: skipped (vLLM is not installed)")
            names.remove(name)
    # every contender in the same alternating rounds; with --duration each runs alone for that long
    groups = [[n] for n in names] if a.duration else [names]
    def save(results: dict) -> None:  # after each contender: a run cut short keeps what it measured
        for name, (result, answers[name]) in results.items():
            report["contenders"][name] = result
        compare(report, answers)
        (a.out / "bench.json").write_text(json.dumps(report, indent=2))

    for group in groups:
        print(f"{', '.join(group)}: running ...", flush=True)
        asyncio.run(run_contenders(group, a, load, common, save))
    print(table(report))
    print(f"wrote {a.out / 'bench.json'}")
    return 0


@dataclass
class Load:
    """The held-out questions, split: the main load first, then the one-client runs', the sweep's and
    the warm-up's (each contender's engine sees every question at most once: no cache hit from an
    earlier run)."""

    questions: list[str]
    one: int
    sweep: int
    warm: int

    @property
    def first_one(self) -> int:
        return len(self.questions) - self.warm - self.sweep - self.one

    @property
    def first_sweep(self) -> int:
        return len(self.questions) - self.warm - self.sweep

    @property
    def first_warm(self) -> int:
        return len(self.questions) - self.warm


async def run_contenders(names: list[str], a, load: Load, common: dict, save=None):
    """Start the contenders, warm each up, then run their loads in `a.rounds` alternating rounds
    (one round when there is a single contender), then each one's one-client and sweep loads; returns
    {name: (summary, final answers of the main load in problem order)}, also handed to `save` as
    each contender's summary is done."""
    from app.bench.contenders import Served

    contenders = {}
    try:
        for name in names:
            contenders[name] = await asyncio.to_thread(_open, name, a, load.questions, common)
            await asyncio.gather(*[contenders[name].send(load.first_warm + i) for i in range(load.warm)])  # not timed
        served = {n: c for n, c in contenders.items() if isinstance(c, Served)}
        rss_start = {n: c.rss_mb() for n, c in served.items()}
        timelines: dict[str, list] = {n: [] for n in served}
        watches = [asyncio.create_task(_watch_memory(c, timelines[n], a.duration)) for n, c in served.items()]
        rounds = a.rounds if len(names) > 1 else 1
        runs: dict[str, list] = {n: [] for n in names}  # per round: (outcomes, wall)
        for r in range(rounds):
            for name in (names if r % 2 == 0 else names[::-1]):
                c = contenders[name]
                per_round, clients = (a.naive_requests, 1) if name == "naive" else (None, a.clients)
                total = per_round * rounds if per_round else a.requests
                lo, hi = total * r // rounds, total * (r + 1) // rounds
                duration = a.duration if name in served else None
                runs[name].append(await closed_loop(lambda i, c=c, lo=lo: c.send(lo + i), hi - lo, clients, duration))
        for w in watches:
            w.cancel()
        results = {}
        for name, c in contenders.items():
            outcomes = [o for done, _ in runs[name] for o in done]
            result = summarize(outcomes, sum(wall for _, wall in runs[name]), 1 if name == "naive" else a.clients)
            result["rounds_answers_per_s"] = [round(len(done) / wall, 3) for done, wall in runs[name]]
            if name != "naive" and load.one:  # time to first token per turn with nobody else around
                one, one_wall = await closed_loop(lambda i, c=c: c.send(load.first_one + i), load.one, 1)
                result["one_client"] = summarize(one, one_wall, 1)
            if name in a.sweep_contenders and a.sweep_clients:
                result["by_clients"] = await _sweep(c, a, load)
                result["saturates_at_clients"] = saturation(result["by_clients"])
            if name.endswith("-spec"):
                result["speculation_by_turn"] = await c.speculation()
            if name in served:
                result["rss_start_mb"], result["rss_end_mb"] = rss_start[name], c.rss_mb()
                result["rss_peak_mb"], result["rss_timeline_mb"] = c.rss_mb("VmHWM"), timelines[name]
            results[name] = (result, [o.answer for o in outcomes])
            if save is not None:
                save(results)
        return results
    finally:
        for c in contenders.values():
            await c.aclose()


async def _sweep(c, a, load: Load) -> dict[int, dict]:
    """The contender at each of `a.sweep_clients` concurrent clients, on questions of its own each."""
    out = {}
    for k, clients in enumerate(a.sweep_clients):
        first = load.first_sweep + k * a.sweep_requests
        done, wall = await closed_loop(lambda i, first=first: c.send(first + i), a.sweep_requests, clients)
        out[clients] = summarize(done, wall, clients)
    return out


def _open(name: str, a, questions: list[str], common: dict):
    from app.bench.contenders import Raw, RawVLLM, Served
    from app.bench.naive import NaiveProcess

    if name == "naive":
        return NaiveProcess(a.model, questions, **common)
    if name in ("raw", "raw-eager", "raw-spec"):
        return Raw(a.model, questions, max_batch_size=a.max_batch_size, cuda_graphs=name != "raw-eager",
                   speculative=name == "raw-spec", **common)
    if name == "raw-vllm":
        return RawVLLM(a.model, questions, **common)
    if name in ("rise-serve", "rise-serve-agree", "rise-serve-spec", "rise-serve-vllm"):
        served = Served(a.model, questions, engine="vllm" if name == "rise-serve-vllm" else "hf",
                        max_batch_size=a.max_batch_size, clients=max([a.clients, *a.sweep_clients]),
                        early_stop="agree" if name == "rise-serve-agree" else "none",
                        env={"RISE_SPECULATIVE": str(name == "rise-serve-spec").lower()}, **common)
        served.name = name
        return served
    raise SystemExit(f"unknown contender {name!r}")


async def _watch_memory(contender, timeline: list, duration: float | None) -> None:
    """The server's resident memory every few seconds: [seconds since start, MiB]."""
    start, every = time.perf_counter(), max(5.0, (duration or 60) / 40)
    while True:
        timeline.append((round(time.perf_counter() - start, 1), contender.rss_mb()))
        await asyncio.sleep(every)


if __name__ == "__main__":
    raise SystemExit(main())
