"""Issue 28, part 3: RISE's no-oracle gain against model size, from what scripts/gpu_sizes.sh brings back
(its sizes.tgz, or the folder it worked in). For each size: its parameter count, and for the base and
for RISE from it, m1@t5 − m5@t1 (five turns against five parallel samples, no oracle) and turn 5's own
accuracy − turn 1's, each a paired difference with its SE over problems; and RISE's m1@t5 against the
same-data one-turn baseline's m5@t1 (about equal tokens). Prints a Markdown table and writes a plot.

    .venv/bin/python scripts/size_gains.py OUT/sizes.tgz --plot docs/results/sizes.png --json docs/results/sizes.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.evaluation.paired import paired, read_records, within_run  # noqa: E402


def _cols(folder: Path) -> tuple[list[str], dict, int]:
    metrics = json.loads((folder / "metrics.json").read_text())
    ids, records = read_records(folder / "metrics.json")
    return ids, records, metrics["config"]["turns"]


def gains(size_dir: Path) -> dict:
    """One size's figures (fractions; SEs over problems)."""
    runs = {m: _cols(size_dir / f"eval-{m}") for m in ("base", "rise", "rft")}
    ids, records, turns = runs["base"]
    if any(r[0] != ids or r[2] != turns or set(r[1]) != set(records) for r in runs.values()) or not records:
        raise SystemExit(f"{size_dir}: the three evaluations must share their problems, seeds and turns")
    seeds = list(records)

    def col(model: str, key: str) -> list[list[float]]:
        return [runs[model][1][s][key] for s in seeds]

    row = {"size": size_dir.name, "parameters": json.loads((size_dir / "pre" / "training.json").read_text())["parameters"],
           "problems": len(ids), "seeds": len(seeds)}
    for model in ("base", "rise"):  # the run's own pairs, as rise eval reports them
        own = within_run(runs[model][1], turns)
        row[f"{model} m1@t{turns} - m5@t1"] = own[f"m1@t{turns} - m5@t1"]
        row[f"{model} t{turns} - t1 own"] = own[f"t{turns} - t1 (each turn's own accuracy)"]
    row[f"rise m1@t{turns} - rft m5@t1"] = paired(col("rise", f"m1@t{turns}"), col("rft", "m5@t1"))
    row["rise t1 - base t1"] = paired(col("rise", "m1@t1"), col("base", "m1@t1"))
    return row


def table(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if isinstance(rows[0][k], dict)]
    lines = ["| size | parameters | " + " | ".join(keys) + " |", "| --- | --- |" + " --- |" * len(keys)]
    for r in rows:
        cells = [f"{100 * r[k]['diff']:+.1f} ({100 * (r[k]['se'] or 0):.1f})" for k in keys]
        lines.append(f"| {r['size']} | {r['parameters'] / 1e6:.1f}M | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n(points, paired SE in brackets; {rows[0]['problems']} problems x {rows[0]['seeds']} seeds)"


def plot(rows: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in rows[0] if isinstance(rows[0][k], dict) and (k.startswith("rise") or k.startswith("base"))
            and k != "rise t1 - base t1"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = [r["parameters"] / 1e6 for r in rows]
    for k in keys:
        ax.errorbar(x, [100 * r[k]["diff"] for r in rows], yerr=[100 * (r[k]["se"] or 0) for r in rows], marker="o",
                    capsize=3, label=k, linestyle="-" if k.startswith("rise") else ":")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("gain, points (± paired SE)")
    ax.set_title("No-oracle gain against model size (inverse task, hard, validation)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="sizes.tgz from scripts/gpu_sizes.sh, or its working folder")
    ap.add_argument("--plot", type=Path, default=None, help="write the plot here (PNG)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = ap.parse_args(argv)
    try:
        rows = _read(a.source)
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError, IndexError) as e:  # JSONDecodeError is a ValueError
        raise SystemExit(f"{a.source}: not the records scripts/gpu_sizes.sh brings back ({type(e).__name__}: {e})") from e
    print(table(rows))
    if a.plot:
        print(f"wrote {plot(rows, a.plot.with_suffix('.png'))}")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def _read(source: Path) -> list[dict]:
    """Each size's figures from the archive (extracted safely: no member may leave the folder) or the folder."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = source
        if source.is_file():
            with tarfile.open(source) as t:
                t.extractall(tmp, filter="data")
            folder = Path(tmp)
        sizes = sorted((d for d in folder.iterdir() if (d / "eval-rise" / "metrics.json").is_file()),
                       key=lambda d: json.loads((d / "pre" / "training.json").read_text())["parameters"])
        if not sizes:
            raise SystemExit(f"{source}: no size with eval-rise/metrics.json")
        return [gains(d) for d in sizes]


if __name__ == "__main__":
    sys.exit(main())
