"""Markdown tables from `rise eval` outputs, for model cards and docs/results, and the model-vs-model
comparison: the paired difference of each metric when the runs share their problems and seeds.

    python -m app.evaluation.report runs/eval-rise/metrics.json runs/eval-base/metrics.json

prints the side-by-side table, then "A − B" for every metric (per problem the mean over seeds of
A − B; its mean, standard error over problems and z), read from each run's per_problem.json. The
first run is A; with more runs each is compared with the first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.evaluation.paired import compare


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
            cells.append("–" if s is None else f"{100 * s['mean']:.1f} ± {_pct(s['se'])} "
                                                 f"[{100 * s['min']:.1f}–{100 * s['max']:.1f}]")
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    for label, rule in (("m1@t%d (tie→last)" % turns, "m1_tie_last"),):
        cells = []
        for r in runs:
            vals = [s[rule][f"m1@t{turns}"]["mean"] for s in r["per_seed"].values()]
            cells.append(f"{100 * sum(vals) / len(vals):.1f}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    rows += _token_rows(runs, turns)
    n = runs[0]["n_problems"]
    seeds = len(runs[0]["seeds"])
    if all("seeds" in next(iter(r["summary"].values())) for r in runs):
        how = (f"standard error over the {n} problems of each problem's mean across seeds (n = {n}, "
               "not problems × seeds)")
    else:  # metrics.json from before the paired statistics: the mean of the per-seed errors
        how = f"standard error = the mean of the per-seed errors (each over n = {n} problems)"
    foot = f"\n\n{n} held-out problems × {seeds} seeds; mean ± {how} [min–max over seeds], in %."
    return head + "\n" + "\n".join(rows) + foot


def _token_rows(runs: list[dict], turns: int) -> list[str]:
    """Mean tokens per problem (prompt + completion), where the runs recorded them."""
    if not all("tokens" in r for r in runs):
        return []
    rows = []
    for key in (f"p1@t{turns}", "m1@t1", f"m1@t{turns}", "m5@t1"):
        cells = [("–" if key not in r["tokens"] else f"{r['tokens'][key]['total']:.0f}") for r in runs]
        rows.append(f"| tokens/problem {key} | " + " | ".join(cells) + " |")
    return rows


def comparison(a: Path, b: Path) -> str:
    """A − B for every metric both runs recorded on the same problems and seeds (markdown table)."""
    try:
        diffs = compare(a, b)
    except (OSError, ValueError) as e:
        return f"paired comparison of {a} and {b}: not possible: {e}"
    name_a, name_b = Path(a).parent.name, Path(b).parent.name
    lines = [f"| metric | {name_a} − {name_b} (points) | SE | z |", "|---|---|---|---|"]
    for key, d in diffs.items():
        if key.endswith("(tie last)") or "answer_changed" in key:
            continue
        se = "–" if d["se"] is None else f"{100 * d['se']:.1f}"
        z = "–" if d["z"] is None else f"{d['z']:.2f}"
        lines.append(f"| {key} | {100 * d['diff']:+.1f} | {se} | {z} |")
    n = next(iter(diffs.values()))["n"] if diffs else 0
    lines.append(f"\nPaired over the same {n} problems and seeds: per problem the mean over seeds of "
                 f"{name_a} − {name_b}; SE over problems.")
    return "\n".join(lines)


def _pct(se: float | None) -> str:
    return "–" if se is None else f"{100 * se:.1f}"


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m app.evaluation.report A/metrics.json [B/metrics.json …]", file=sys.stderr)
        return 2
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"report: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    print(table(paths))
    for other in paths[1:]:
        print()
        print(comparison(paths[0], other))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
