"""What `rise bench` writes and prints: the machine, the ratios between contenders (each the median
over the alternating rounds, with its spread and every round's value) and the table.

    python -m app.bench.cli --quick
"""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path

# (report key, numerator, denominator): each ratio that both of its contenders ran is reported
RATIOS = (("vs_naive", "rise-serve", "naive"), ("vs_raw", "rise-serve", "raw"),
          ("vllm_vs_raw_vllm", "rise-serve-vllm", "raw-vllm"), ("graphs_vs_eager", "raw", "raw-eager"),
          ("spec_vs_naive", "rise-serve-spec", "naive"), ("spec_vs_raw", "rise-serve-spec", "raw"),
          ("spec_vs_rise_serve", "rise-serve-spec", "rise-serve"), ("raw_spec_vs_raw", "raw-spec", "raw"))


def compare(report: dict, answers: dict) -> None:
    """The top-level ratios from whichever contenders have run: `report[key]` is the median over
    rounds of the per-round ratio, `report["ratios"][key]` has its spread and the rounds."""
    c = report["contenders"]
    report["ratios"] = {}
    for key, num, den in RATIOS:
        report[key] = None
        if num in c and den in c:
            per_round = [round(x / y, 3) for x, y in zip(c[num]["rounds_answers_per_s"], c[den]["rounds_answers_per_s"])
                         if y]
            if per_round:
                report["ratios"][key] = spread(per_round)
                report[key] = report["ratios"][key]["median"]
    plain, spec = (c.get(n, {}).get("one_client", {}).get("p50_s") for n in ("rise-serve", "rise-serve-spec"))
    report["one_client_spec_latency_ratio"] = round(spec / plain, 3) if plain and spec else None
    one = c.get("rise-serve", {}).get("one_client", {}).get("ttft_by_turn_s") or []
    report["ttft_turn5_over_turn1"] = round(one[-1] / one[0], 2) if len(one) >= 2 and one[0] else None
    if "naive" in answers and "rise-serve" in answers:  # same work: the same greedy answers
        shared = list(zip(answers["naive"], answers["rise-serve"]))
        report["same_final_answer_as_naive"] = round(sum(x == y for x, y in shared) / len(shared), 3)


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2), "max": round(max(values), 2),
            "rounds": values}


def saturation(by_clients: dict[int, dict], within: float = 0.05) -> int | None:
    """The fewest clients whose throughput is within `within` of the best measured: where more
    clients stop buying throughput."""
    if not by_clients:
        return None
    best = max(r["answers_per_s"] for r in by_clients.values())
    return min(k for k, r in by_clients.items() if r["answers_per_s"] >= (1 - within) * best)


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

    def line(name: str, r: dict) -> str:
        ttft = " ".join(f"{t:.3f}" if t is not None else "-" for t in r["ttft_by_turn_s"])
        return (f"{name:<18}{r['clients']:>8}{r['answers_per_s']:>11.2f}{r['tokens_per_s']:>10.0f}"
                f"{r.get('tokens_per_answer', 0):>9.0f}{r['p50_s']:>8.2f}{r['p99_s']:>8.2f}  {ttft}")

    for name, r in report["contenders"].items():
        rows.append(line(name, r))
        if "one_client" in r:
            rows.append(line("  at one client", r["one_client"]))
        for clients, s in r.get("by_clients", {}).items():
            rows.append(line(f"  at {clients} clients", s))
    for key, num, den in RATIOS:
        if (s := report["ratios"].get(key)) is not None:
            rows.append(f"{num} / {den}: {s['median']}x (median of {len(s['rounds'])} rounds, {s['min']}-{s['max']})")
    rows.append(f"turn-5 / turn-1 time to first token (one client): {report['ttft_turn5_over_turn1']}")
    if report.get("one_client_spec_latency_ratio") is not None:
        rows.append(f"rise-serve-spec / rise-serve refinement time at one client (p50): "
                    f"{report['one_client_spec_latency_ratio']}x")
    for name, r in report["contenders"].items():
        if r.get("speculation_by_turn"):
            turns = ", ".join(f"turn {t}: {s['acceptance']:.0%} accepted, {s['mean_accepted_length']} per pass"
                              for t, s in r["speculation_by_turn"].items())
            rows.append(f"{name} speculation: {turns}")
    return "\n".join(rows)
