"""Problem sources for evaluation and training: the synthetic generator and the benchmark files in
`RISE_DATA_DIR` (default `../shared/data`: GSM8K train/test, MATH-500 test).

`inverse` is the synthetic task's second family (the end of a chain given, its start asked:
`app/tasks/inverse.py`), with the same splits, seeds, level names and answer format.

Splits: synthetic has train, validation and test (disjoint by structure, `app/tasks/synthetic.py`),
each with its own default problem seed so that tuning on validation never draws the test problems'
sequence; GSM8K has train and test; MATH-500 test only. Choose settings on validation; cards report test.

    rise eval --split validation --limit 500 --out runs/eval-val
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.tasks import inverse, synthetic

DATASETS = ("synthetic", "inverse", "gsm8k", "math500")
GENERATED = {"synthetic": synthetic, "inverse": inverse}  # drawn by seed and level, not read from a file
FAMILY = {"synthetic": "synthetic", "inverse": "synthetic", "gsm8k": "gsm8k", "math500": "math"}
SPLITS = {"synthetic": synthetic.SPLITS, "inverse": inverse.SPLITS, "gsm8k": ("train", "test"), "math500": ("test",)}
ALL_SPLITS = ("train", "validation", "test")
# synthetic: the problem seed used when none is given (validation's differs from test's)
DEFAULT_PROBLEM_SEED = {"test": 1234, "validation": 4321, "train": 1234}


def check_split(name: str, split: str) -> None:
    """ValueError naming the splits `name` has, when it has no `split`."""
    if name not in SPLITS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in SPLITS[name]:
        raise ValueError(f"dataset {name} has no {split!r} split; it has: {', '.join(SPLITS[name])}")


def default_problem_seed(split: str) -> int:
    return DEFAULT_PROBLEM_SEED[split]


def data_dir() -> Path:
    return Path(os.environ.get("RISE_DATA_DIR", "../shared/data"))


def load(name: str, split: str = "test", limit: int | None = None, seed: int | None = None,
         level: str = "medium") -> list[tuple[str, str]]:
    """(question, reference answer) pairs; `seed` draws the synthetic problems (None: the split's default)."""
    check_split(name, split)
    if name in GENERATED:
        seed = default_problem_seed(split) if seed is None else seed
        family = GENERATED[name]
        probs = family.problems(seed, limit or 1000, family.LEVELS[level], split)
        return [(p.question, p.answer) for p in probs]
    if name == "gsm8k":
        rows = _jsonl(data_dir() / "gsm8k" / f"{split}.jsonl", limit)
        return [(r["question"], r["answer"].split("####")[-1].strip().replace(",", "")) for r in rows]
    if name == "math500":
        return [(r["problem"], r["answer"]) for r in _jsonl(data_dir() / "math500" / "test.jsonl", limit)]
    raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")


def _jsonl(path: Path, limit: int | None) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: set RISE_DATA_DIR to the folder holding gsm8k/ and math500/")
    rows = []
    with path.open() as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows
