"""Statistics over problems and seeds: the summary of a multi-seed run, and paired differences.

A problem's value is its mean over the seeds (e.g. 0, 0.5 or 1 for two seeds); a figure is the
mean of those over the problems, and its standard error is their standard deviation over
sqrt(problems): n is the number of problems, not problems × seeds (seeds of one problem are not
independent draws of the test set). "A beats B" on the same problems is the paired difference:
per problem the mean over seeds of (A − B), then its mean, standard error and z = diff / se.

Per-problem records (0/1 per problem, per seed, per metric) live beside metrics.json in
per_problem.json, so that two runs on the same problems and seeds can be compared
(`python -m app.evaluation.report A/metrics.json B/metrics.json`).

    .venv/bin/python -m pytest -q tests/evaluation/test_paired.py
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Mapping, Sequence

PerSeed = Mapping[str, Mapping[str, Sequence[float]]]  # seed -> metric -> one value per problem
RECORDS = "per_problem.json"


def across_seeds(per_seed: Sequence[Sequence[float]]) -> dict:
    """{mean, se, n (problems), seeds, min, max (over the seeds' means)} of one metric."""
    n = len(per_seed[0])
    if any(len(v) != n for v in per_seed):
        raise ValueError("every seed must have one value per problem")
    x = [sum(v[i] for v in per_seed) / len(per_seed) for i in range(n)]
    means = [sum(v) / n for v in per_seed] if n else [0.0]
    mean, se = _mean_se(x)
    return {"mean": round(mean, 4), "se": se, "n": n, "seeds": len(per_seed),
            "min": round(min(means), 4), "max": round(max(means), 4)}


def paired(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> dict:
    """A − B on the same problems and seeds: {diff, se, z, n}; a[s][i] is seed s, problem i."""
    if len(a) != len(b) or any(len(x) != len(y) for x, y in zip(a, b)):
        raise ValueError("paired differences need the same problems and seeds on both sides")
    n = len(a[0])
    d = [sum(x[i] - y[i] for x, y in zip(a, b)) / len(a) for i in range(n)]
    diff, se = _mean_se(d)
    z = None if not se else round(diff / se, 2)
    return {"diff": round(diff, 4), "se": se, "z": z, "n": n}


def summarize(per_seed: PerSeed) -> dict[str, dict]:
    """Every metric of the records over problems and seeds (`across_seeds`)."""
    seeds = list(per_seed)
    return {key: across_seeds([per_seed[s][key] for s in seeds]) for key in per_seed[seeds[0]]}


def within_run(per_seed: PerSeed, turns: int, m: int = 5) -> dict[str, dict]:
    """The paired differences the goals of a RISE run are about, on one run's own problems:
    sequential against parallel (m1@tK − m5@t1), later turns against the first (m1, p1, and turn K's
    own answer against turn 1's)."""
    seeds = list(per_seed)

    def col(key: str) -> list[Sequence[float]]:
        return [per_seed[s][key] for s in seeds]

    out = {}
    pairs = [(f"m1@t{turns}", f"m{m}@t1", None), (f"m1@t{turns}", "m1@t1", None), (f"p1@t{turns}", "p1@t1", None),
             (f"turn_accuracy/t{turns}", "turn_accuracy/t1", f"t{turns} - t1 (each turn's own accuracy)")]
    for a, b, label in pairs:
        if a != b and a in per_seed[seeds[0]] and b in per_seed[seeds[0]]:
            out[label or f"{a} - {b}"] = paired(col(a), col(b))
    return out


def problem_id(question: str) -> str:
    """A short stable id of a problem's text (never its answer)."""
    return hashlib.sha256(question.encode()).hexdigest()[:16]


def write_records(out: Path, questions: Sequence[str], per_seed: PerSeed, name: str = RECORDS) -> Path:
    """per_problem.json (or `name`): problem ids in order, and per seed and metric a string of 0/1 per
    problem."""
    body = {"problem_ids": [problem_id(q) for q in questions],
            "seeds": {s: {k: "".join(_bit(x) for x in v) for k, v in m.items()} for s, m in per_seed.items()}}
    path = out / name
    path.write_text(json.dumps(body, indent=1) + "\n")
    return path


def read_records(metrics_path: Path, name: str = RECORDS) -> tuple[list[str], dict[str, dict[str, list[float]]]]:
    """(problem ids, seed -> metric -> values) from the per_problem.json (or `name`) beside a metrics.json."""
    path = Path(metrics_path).parent / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: per-problem records are written by rise eval since the "
                                f"paired statistics; rerun rise eval for {metrics_path}")
    body = json.loads(path.read_text())
    return body["problem_ids"], {s: {k: [float(c) for c in v] for k, v in m.items()} for s, m in body["seeds"].items()}


def compare(a_path: Path, b_path: Path) -> dict[str, dict]:
    """A − B for every metric both runs recorded, when both ran the same problems and seeds."""
    ids_a, rec_a = read_records(a_path)
    ids_b, rec_b = read_records(b_path)
    if ids_a != ids_b:
        raise ValueError(f"{a_path} and {b_path} did not run the same problems in the same order")
    if set(rec_a) != set(rec_b):
        raise ValueError(f"{a_path} ran seeds {sorted(rec_a)} and {b_path} seeds {sorted(rec_b)}: not paired")
    seeds = sorted(rec_a)
    keys = [k for k in rec_a[seeds[0]] if k in rec_b[seeds[0]]]
    return {k: paired([rec_a[s][k] for s in seeds], [rec_b[s][k] for s in seeds]) for k in keys}


def _mean_se(x: Sequence[float]) -> tuple[float, float | None]:
    n = len(x)
    if n == 0:
        return 0.0, None
    mean = sum(x) / n
    if n == 1:
        return mean, None
    var = sum((v - mean) ** 2 for v in x) / (n - 1)
    return mean, round(math.sqrt(var / n), 4)


def _bit(x: float) -> str:
    if x not in (0.0, 1.0):
        raise ValueError(f"per-problem records are 0/1 values, not {x}")
    return "1" if x else "0"
