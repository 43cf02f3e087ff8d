"""The accuracy-per-turn plot: p1@tk (oracle), m1@tk (majority over turns, both tie rules),
the accuracy of turn k's own answer, and the m5@t1 parallel baseline as a line."""

from __future__ import annotations

from pathlib import Path


def plot_turns(metrics: dict, out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = metrics["summary"]
    turns = metrics["config"]["turns"]
    ks = list(range(1, turns + 1))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for key, label, style in [("p1", "p1@tk (oracle)", "o-"), ("m1", "m1@tk (majority, tie→first)", "s-")]:
        ys = [100 * s[f"{key}@t{k}"]["mean"] for k in ks]
        es = [100 * s[f"{key}@t{k}"]["se"] for k in ks]
        ax.errorbar(ks, ys, yerr=es, fmt=style, capsize=3, label=label)
    per_seed = list(metrics["per_seed"].values())
    tie_last = [100 * sum(p["m1_tie_last"][f"m1@t{k}"]["mean"] for p in per_seed) / len(per_seed) for k in ks]
    ax.plot(ks, tie_last, "s--", alpha=0.6, label="m1@tk (tie→last)")
    turn_acc = [100 * sum(p["flow"]["turn_accuracy"][f"t{k}"]["mean"] for p in per_seed) / len(per_seed) for k in ks]
    ax.plot(ks, turn_acc, "x:", label="turn k's own answer (no oracle)")
    m5 = s.get("m5@t1")
    if m5:
        ax.axhline(100 * m5["mean"], color="gray", linestyle="--", label="m5@t1 (5 parallel samples)")
    ax.set_xlabel("turn k")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks(ks)
    ax.set_title(title or f"{metrics.get('model', '')} on {metrics.get('dataset', '')} (n={metrics['n_problems']})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "turns.png"
    fig.savefig(path)
    plt.close(fig)
    return path
