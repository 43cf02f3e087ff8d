"""Issue 28, part 2: the goals of self-improvement on the inverse task, checked on three `rise eval` runs
of the same problems and seeds (checked): RISE, its same-data one-turn baseline (rejection-sampling
fine-tuning, RFT) and the base both start from. Each goal with its measured value, paired SE and z,
and whether it is met.

    python scripts/inverse_goals.py runs/inv/eval-rise runs/inv/eval-rft runs/inv/eval-base

The goals (per problem the mean over seeds; SE over problems):
  1. RISE m1@t5 - m5@t1 >= +4 points, z > 2.5 (no oracle: five turns against five parallel samples);
  2. RISE turn 5's own accuracy >= turn 1's + 6 points;
  3. at t1 -> t2, right -> wrong <= 1/3 of wrong -> right (shares of problems);
  4. RISE turn 1 within 2 points of the base's turn 1;
  5. RISE above the one-turn baseline at equal tokens by >= 2 points: m1@t5 against RFT's m5@t1 (five
     turns against five samples; their completion tokens are shown), and m1@t1 against RFT's m1@t1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.evaluation.paired import across_seeds, paired, read_records


def _load(folder: Path) -> tuple[list, dict, dict]:
    ids, records = read_records(folder / "metrics.json")
    return ids, records, json.loads((folder / "metrics.json").read_text())


def goals(rise: Path, rft: Path, base: Path) -> list[dict]:
    (ids, r, mr), (ids_f, f, mf), (ids_b, b, mb) = _load(rise), _load(rft), _load(base)
    if not (ids == ids_f == ids_b) or not (list(r) == list(f) == list(b)):
        raise SystemExit("the three runs must share their problems and seeds")
    seeds = list(r)

    def col(rec: dict, key: str) -> list[list[float]]:
        return [rec[s][key] for s in seeds]

    def tokens(m: dict, key: str) -> float:
        return m["tokens"][key]["completion"]

    turns = mr["config"]["turns"]
    last = f"t{turns}"
    out = []
    d = paired(col(r, f"m1@t{turns}"), col(r, "m5@t1"))
    out.append({"goal": f"RISE m1@t{turns} - m5@t1 >= +4, z > 2.5", **d,
                "met": d["diff"] >= 0.04 and (d["z"] or 0) > 2.5})
    d = paired(col(r, f"turn_accuracy/{last}"), col(r, "turn_accuracy/t1"))
    out.append({"goal": f"RISE turn {turns}'s own accuracy - turn 1's >= +6", **d, "met": d["diff"] >= 0.06})
    w2r = across_seeds(col(r, "t1->t2/wrong_to_right"))["mean"]
    r2w = across_seeds(col(r, "t1->t2/right_to_wrong"))["mean"]
    out.append({"goal": "t1->t2 right->wrong <= 1/3 of wrong->right", "wrong_to_right": w2r, "right_to_wrong": r2w,
                "met": r2w <= w2r / 3})
    d = paired(col(r, "m1@t1"), col(b, "m1@t1"))
    out.append({"goal": "RISE turn 1 within 2 points of the base's", **d, "met": abs(d["diff"]) <= 0.02})
    d = paired(col(r, f"m1@t{turns}"), col(f, "m5@t1"))
    out.append({"goal": f"RISE m1@t{turns} - RFT m5@t1 >= +2 (about equal tokens)", **d,
                "tokens": [tokens(mr, f"m1@t{turns}"), tokens(mf, "m5@t1")], "met": d["diff"] >= 0.02})
    d = paired(col(r, "m1@t1"), col(f, "m1@t1"))
    out.append({"goal": "RISE m1@t1 - RFT m1@t1 (one answer each)", **d,
                "tokens": [tokens(mr, "m1@t1"), tokens(mf, "m1@t1")], "met": None})
    return out


def accuracies(folder: Path) -> dict:
    """Each model's headline figures, for the table beside the goals."""
    m = json.loads((folder / "metrics.json").read_text())
    turns = m["config"]["turns"]
    keys = ["m1@t1", f"m1@t{turns}", "m5@t1", f"p1@t{turns}"]
    return {k: (m["summary"][k]["mean"], m["summary"][k]["se"], m["tokens"][k]["completion"]) for k in keys} | {
        f"turn {k} own": (m["flow"]["turn_accuracy"][f"t{k}"]["mean"], m["flow"]["turn_accuracy"][f"t{k}"]["se"], None)
        for k in (1, 2, turns)}


def markdown(rows: list[dict]) -> str:
    lines = ["| goal | measured | met |", "| --- | --- | --- |"]
    for g in rows:
        if "diff" in g:
            v = f"{100 * g['diff']:+.1f} (SE {100 * g['se']:.1f}, z {g['z']})"
            if "tokens" in g:
                v += f"; tokens {g['tokens'][0]:.0f} vs {g['tokens'][1]:.0f}"
        else:
            v = f"right->wrong {100 * g['right_to_wrong']:.1f}%, wrong->right {100 * g['wrong_to_right']:.1f}%"
        lines.append(f"| {g['goal']} | {v} | {'–' if g['met'] is None else ('yes' if g['met'] else '**no**')} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    folders = [Path(a) for a in argv]
    figures = [accuracies(f) for f in folders]
    print("| model | " + " | ".join(figures[0]) + " |")
    print("| --- |" + " --- |" * len(figures[0]))
    for name, acc in zip(("RISE", "RFT (one-turn)", "base"), figures):
        cells = [f"{100 * a:.1f} ± {100 * s:.1f}" + ("" if t is None else f" ({t:.0f} tok)") for a, s, t in acc.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()
    rows = goals(*folders)
    print(markdown(rows))
    print("\n```json\n" + json.dumps(rows, indent=1) + "\n```")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
