"""Where `make test`'s time goes, by part of the suite: reads the JSON that `RISE_TEST_CPU_JSON` makes
the suite write (tests/cpu.py: each file's wall seconds and CPU seconds) and prints a Markdown table,
one row per part (docs/testing.md#how-long-it-takes). A file counts whole in one part.

    RISE_TEST_CPU_JSON=runs/test-cpu.json make test
    .venv/bin/python scripts/test_time.py runs/test-cpu.json   # and the run's tail: what ran after a worker was done
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (part, rule on a test file's path or text), the first that matches wins
PARTS = [
    ("files that start vLLM engines (in-process, its server, LoRA, rollouts, bench)",
     lambda path, text: re.search(r'find_spec\("vllm"\)|importorskip\("vllm"', text) is not None),
    ("the browser (Chromium: playground, /docs)", lambda path, text: "chromium" in text or re.search(r"test_playground_|browser", path) is not None),
    ("training runs (RISE, LoRA, FSDP, 2 processes under Accelerate)",
     lambda path, text: path.startswith("tests/training/")),
    ("traces with PostgreSQL (and SQLite)",
     lambda path, text: path.startswith(("tests/traces/", "tests/api/test_refinements")) and "pg" in text),
    ("traces, SQLite only", lambda path, text: path.startswith("tests/traces/")),
    ("engines: embedded (batching, prefix cache, speculation), remote",
     lambda path, text: path.startswith("tests/engines/")),
    ("API and deploy tests against live servers", lambda path, text: path.startswith(("tests/api/", "tests/deploy/"))),
]
OTHER = "CLI, evaluation, tasks, answers, other"


def part_of(path: str, root: Path = ROOT) -> str:
    file = root / path
    text = file.read_text() if file.exists() else ""
    return next((name for name, rule in PARTS if rule(path, text)), OTHER)


def table(figures: dict, root: Path = ROOT) -> str:
    """The Markdown table of `figures` (tests/cpu.py's JSON), parts by wall seconds, most first."""
    tests = defaultdict(int)
    for nodeid in figures["tests"]:
        tests[nodeid.split("::")[0]] += 1
    rows = defaultdict(lambda: [0, 0.0, 0.0])
    for path in set(figures["wall_by_file"]) | set(figures["files"]):
        row = rows[part_of(path, root)]
        row[0] += tests[path]
        row[1] += figures["wall_by_file"].get(path, 0.0)
        row[2] += figures["files"].get(path, 0.0)
    lines = ["| part | tests | test seconds (wall, summed over workers) | CPU seconds |", "| --- | --- | --- | --- |"]
    for name, (n, wall, cpu) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {name} | {n:,} | {wall:,.0f} | {cpu:,.0f} |")
    n, wall, cpu = (sum(r[i] for r in rows.values()) for i in range(3))
    lines.append(f"| **all** | {n:,} | {wall:,.0f} | {cpu:,.0f} |")
    return "\n".join(lines)


def tail(figures: dict) -> str:
    """The run's tail: from when the first worker ran out of files to the end, and the files still
    running then (the order of conftest.py's SLOW_FIRST exists to keep this short)."""
    timeline = figures.get("timeline", [])
    if not timeline:
        return "no timeline in this file (a run before tests/cpu.py recorded one)"
    last = {}
    for worker, _, _, stop in timeline:
        last[worker] = max(last.get(worker, 0.0), stop)
    end, first_done = max(last.values()), min(last.values())
    late = [f"{path} ({worker}, {start:.0f}-{stop:.0f} s)" for worker, path, start, stop in timeline if stop > first_done]
    return (f"the tests ran for {end:.0f} s; the first worker ran out of files at {first_done:.0f} s "
            f"({end - first_done:.0f} s of tail); running after it: " + "; ".join(late))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("figures", type=Path, help="the file RISE_TEST_CPU_JSON named")
    a = p.parse_args(argv)
    figures = json.loads(a.figures.read_text())
    print(table(figures))
    print()
    print(tail(figures))


if __name__ == "__main__":
    main()
