"""The worst `/health` latency while a request's costliest accepted (and refused) parameters are
checked and judged (issue 26): a real `rise serve` on the shipped model, `/health` polled every
10 ms from its own connection while each request runs, `--rounds` times; the result goes to
docs/results/health-latency.json (the worst and the 99th percentile per case, with the machine).

    .venv/bin/python scripts/health_latency.py                 # about 2 minutes on 2 CPU cores
    .venv/bin/python scripts/health_latency.py --rounds 1 --only regex --out /tmp/h.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.verifiers import patterns  # noqa: E402
from tests.servers import start_server, stop_server  # noqa: E402

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


def cases() -> dict[str, dict]:
    """name -> the request body; `max_turns` 1, so that the model's turn is short."""
    def at_cap(body: str, suffix: str = "") -> str:
        n = (patterns.MAX_REPEAT_COST - len(suffix)) // patterns.repeat_cost(body % 1)
        return body % n + suffix

    fold = at_cap("(?V1i)(?:" + "[ß-ﬃ]" * 30 + "){%d}")
    empty = at_cap("(?:" + "()" * 5 + "){%d}")
    per_request = patterns.MAX_REQUEST_COST // patterns.MAX_REPEAT_COST
    heavy_schema = {"anyOf": [{"pattern": at_cap("(?:" + "()" * 5 + "){%d}", str(i))} for i in range(per_request)]}
    issue = {"anyOf": [{"pattern": f"(?:a{{99}}){{999}}{i}"} for i in range(470)]}
    over_budget = {"anyOf": [{"pattern": at_cap("(?:a{99}){%d}", str(i))} for i in range(400)]}
    long_text = "The answer is 31. " * 50
    return {
        "no verifier": {},
        "regex, case folded fully, at the per-pattern cap": {"verifier": {"name": "regex", "pattern": fold}},
        "regex, empty capturing groups, at the per-pattern cap": {"verifier": {"name": "regex", "pattern": empty}},
        "regex, catastrophic backtracking on the text": {"verifier": {"name": "regex", "pattern": "(x+x+)+y",
                                                                       "on": "text"}},
        "json_schema, patterns up to the request's budget": {"verifier": {"name": "json_schema",
                                                                          "schema": heavy_schema}},
        "json_schema, metaschema check of a 20 KB schema": {"verifier": {"name": "json_schema",
                                                                         "schema": {"allOf": [{}] * 3000}}},
        "json_schema, the issue's 470 patterns (refused)": {"verifier": {"name": "json_schema", "schema": issue}},
        "json_schema, 400 patterns past the budget (refused)": {"verifier": {"name": "json_schema",
                                                                             "schema": over_budget}},
        "verifier parameters, 1 MB of JSON objects (refused)": {"verifier": {"name": "regex", "pattern": "31",
                                                                              "x": [{"a": 1}] * 99_000}},
        "contains, 1000 characters, ignore_case": {"verifier": {"name": "contains", "value": "3" * 999 + "1",
                                                                "ignore_case": True}},
        "feedback template repeating a long question": {"feedback": "{question}" * 200, "max_turns": 2, "max_tokens": 8,
                                                        "question": ("Sam has 23 apples. " * 80)[:1400] + " " + Q},
        "stop strings, 4 long ones": {"stop": ["y" * 60_000] * 4},
        "reference, 600 characters of LaTeX": {"reference": "\\frac{" + "1+" * 300 + "1}{2}"},
        "reference and a long text": {"reference": "31", "question": long_text + Q},
    }


def worst_health(url: str, body: dict, rounds: int) -> tuple[list[float], list[int]]:
    """Every /health latency (s) polled while `body` ran, over `rounds` requests, and their statuses."""
    latencies, statuses = [], []
    with httpx.Client(timeout=120) as client:
        client.get(f"{url}/health")
        for _ in range(rounds):
            done: list[int] = []
            worker = threading.Thread(target=lambda: done.append(
                httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 1, **body}, timeout=300).status_code))
            worker.start()
            while worker.is_alive():
                start = time.monotonic()
                client.get(f"{url}/health").raise_for_status()
                latencies.append(time.monotonic() - start)  # begun while the request ran
                time.sleep(0.01)
            statuses.append(done[0])
    return latencies, statuses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "docs/results/health-latency.json"))
    ap.add_argument("--only", default="", help="run only the cases whose name holds this text")
    a = ap.parse_args()
    load = os.getloadavg()[0]
    proc, url, _ = start_server()
    httpx.post(f"{url}/v1/refine", json={"question": ""}, timeout=60)  # a fresh server's first request: 0.4 s
    rows = []
    try:
        for name, body in ((n, b) for n, b in cases().items() if a.only in n):
            lat, statuses = worst_health(url, body, a.rounds)
            row = {"case": name, "statuses": sorted(set(statuses)), "polls": len(lat),
                   "worst_ms": round(max(lat, default=0) * 1000, 1),
                   "p99_ms": round(statistics.quantiles(lat, n=100, method="inclusive")[98] * 1000, 1) if len(lat) > 1 else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        stop_server(proc)
    out = {"what": "worst /health latency while each request ran (polled every 10 ms on its own connection)",
           "command": "python scripts/health_latency.py", "rounds": a.rounds, "bound_ms": 100,
           "worst_ms": max(r["worst_ms"] for r in rows),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average_1m": load},
           "cases": rows}
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"worst /health latency: {out['worst_ms']} ms -> {a.out}")


if __name__ == "__main__":
    main()
