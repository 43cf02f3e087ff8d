"""Issue 28, part 1: the re-check model (rise-synth) against its same-data one-turn baseline, on the
card's problems and seeds: each method's accuracy (± SE over problems), completion tokens per problem
and per right answer, and its paired difference with the baseline's first turn.

    python scripts/one_turn_baseline.py runs/r14-one-turn/eval1000 models/rise-synth/eval1000 \
        docs/results/compute-rise-synth [runs/r14-one-turn/compute1000]

BASELINE is `rise eval --turns 1` of the one-turn model (m1@t1 and m5@t1), RISE the card's `rise eval`
(m1@t1, m1@t5), COMPUTE its `rise eval --compute` (fixed K = 2 with ties to the later turn, as served,
and `confident`; left out while COMPUTE has no compute_per_problem.json), and BASELINE_COMPUTE, where
given, the baseline's own `rise eval --compute` (the same two rules on the one-turn model, which was
never trained after feedback: its later turns are base-synth's), all on the same problems and seeds
(checked).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.evaluation import compute
from app.evaluation.paired import across_seeds, paired, read_records


RULES = [("m1@t2 ties to the later turn (served)", "fixed K=2 tie-last"),
         ("`confident` (mean >= 0.99, K = 5)", "confident(mean>=0.99) K=5")]


def _rules(model: str, folder: Path, ids: list, seeds: list, required: bool = False) -> list[tuple]:
    """The served two turns and `confident` of a `rise eval --compute` run, from its per-problem records."""
    if not (folder / compute.RECORDS).is_file():
        if required:
            raise SystemExit(f"{folder} has no {compute.RECORDS} (a rise eval --compute run writes it)")
        return []
    ids_c, comp = read_records(folder / "compute.json", compute.RECORDS)
    if ids_c != ids or list(comp) != seeds:
        raise SystemExit("the --compute run must share the problems and seeds")
    tokens = {r["method"]: r["tokens_per_problem"] for r in json.loads((folder / "compute.json").read_text())["rows"]}
    return [(f"{model}, {name}", [comp[s][method] for s in seeds], tokens[method]) for name, method in RULES]


def rows(baseline: Path, rise: Path, compute_dir: Path, baseline_compute: Path | None = None) -> list[dict]:
    ids_b, base = read_records(baseline / "metrics.json")
    ids_r, card = read_records(rise / "metrics.json")
    if ids_b != ids_r or list(base) != list(card):
        raise SystemExit("the runs must share their problems and seeds")
    tok_b = json.loads((baseline / "metrics.json").read_text())["tokens"]
    tok_r = json.loads((rise / "metrics.json").read_text())["tokens"]
    seeds = list(base)
    methods = [
        ("one-turn baseline, m1@t1", [base[s]["m1@t1"] for s in seeds], tok_b["m1@t1"]["completion"]),
        ("one-turn baseline, m5@t1", [base[s]["m5@t1"] for s in seeds], tok_b["m5@t1"]["completion"]),
        ("rise-synth, m1@t1", [card[s]["m1@t1"] for s in seeds], tok_r["m1@t1"]["completion"]),
    ]
    if baseline_compute is not None:
        methods += _rules("one-turn baseline", baseline_compute, ids_b, seeds, required=True)
    methods += _rules("rise-synth", compute_dir, ids_b, seeds)  # none while it has no per-problem records
    methods.append(("rise-synth, m1@t5", [card[s]["m1@t5"] for s in seeds], tok_r["m1@t5"]["completion"]))
    reference = methods[0][1]
    out = []
    for name, values, tokens in methods:
        s = across_seeds(values)
        out.append({"method": name, "accuracy": s["mean"], "se": s["se"], "n": s["n"], "seeds": s["seeds"],
                    "tokens_per_problem": round(tokens, 1),
                    "tokens_per_right_answer": round(tokens / s["mean"], 1) if s["mean"] else None,
                    "vs_baseline_m1": None if values is reference else paired(values, reference)})
    return out


def markdown(table: list[dict]) -> str:
    head = ("| method | accuracy | completion tokens / problem | tokens / right answer | − baseline m1@t1 (SE, z) |\n"
            "| --- | --- | --- | --- | --- |")
    lines = [head]
    for r in table:
        d = r["vs_baseline_m1"]
        vs = "–" if d is None else f"{100 * d['diff']:+.1f} ({100 * d['se']:.1f}, {d['z']})"
        lines.append(f"| {r['method']} | {100 * r['accuracy']:.1f} ± {100 * r['se']:.1f} | {r['tokens_per_problem']} "
                     f"| {r['tokens_per_right_answer']} | {vs} |")
    n, seeds = table[0]["n"], table[0]["seeds"]
    lines.append(f"\n{n} problems × {seeds} seeds; ± is the SE over problems of each problem's mean over seeds; "
                 "the paired difference is per problem, then its mean, SE and z.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    table = rows(*(Path(a) for a in argv))
    print(markdown(table))
    print("\n```json\n" + json.dumps(table, indent=1) + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
