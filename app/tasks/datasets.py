"""Problem sources for evaluation and training: the synthetic generator and the benchmark files in
`RISE_DATA_DIR` (default `../shared/data`: GSM8K train/test, MATH-500 test)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.tasks import synthetic

DATASETS = ("synthetic", "gsm8k", "math500")
FAMILY = {"synthetic": "synthetic", "gsm8k": "gsm8k", "math500": "math"}


def data_dir() -> Path:
    return Path(os.environ.get("RISE_DATA_DIR", "../shared/data"))


def load(name: str, split: str = "test", limit: int | None = None, seed: int = 1234,
         level: str = "medium") -> list[tuple[str, str]]:
    """(question, reference answer) pairs."""
    if name == "synthetic":
        probs = synthetic.problems(seed, limit or 1000, synthetic.LEVELS[level], split)
        return [(p.question, p.answer) for p in probs]
    if name == "gsm8k":
        rows = _jsonl(data_dir() / "gsm8k" / f"{split}.jsonl", limit)
        return [(r["question"], r["answer"].split("####")[-1].strip().replace(",", "")) for r in rows]
    if name == "math500":
        if split != "test":
            raise ValueError("MATH-500 has only a test split")
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
