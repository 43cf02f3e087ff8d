"""Markdown tables from `rise eval` outputs, for model cards and the README.

    python -m app.evaluation.report runs/eval-base/metrics.json runs/eval-rise/metrics.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def table(paths: list[Path], names: list[str] | None = None) -> str:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    names = names or [Path(p).parent.name for p in paths]
    turns = runs[0]["config"]["turns"]
    keys = [f"p1@t{k}" for k in range(1, turns + 1)] + [f"m1@t{k}" for k in range(1, turns + 1)] + ["m5@t1", "pass@5"]
    head = "| metric | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
    rows = []
    for key in keys:
        cells = []
        for r in runs:
            s = r["summary"].get(key)
            cells.append("–" if s is None else f"{100 * s['mean']:.1f} ± {100 * s['se']:.1f} "
                                                 f"[{100 * s['min']:.1f}–{100 * s['max']:.1f}]")
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    for label, rule in (("m1@t%d (tie→last)" % turns, "m1_tie_last"),):
        cells = []
        for r in runs:
            vals = [s[rule][f"m1@t{turns}"]["mean"] for s in r["per_seed"].values()]
            cells.append(f"{100 * sum(vals) / len(vals):.1f}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    n = runs[0]["n_problems"]
    seeds = len(runs[0]["seeds"])
    foot = (f"\n\n{n} held-out problems × {seeds} seeds (n = {n * seeds} per cell); mean ± standard error "
            f"[min–max over seeds], in %.")
    return head + "\n" + "\n".join(rows) + foot


if __name__ == "__main__":
    print(table([Path(p) for p in sys.argv[1:]]))
