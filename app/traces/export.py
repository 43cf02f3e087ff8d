"""Stored traces as JSON lines, the input of `rise train rise --from-traces`. The reference
appears only in a labelled export (`labelled_only`), where training needs it.

    rise traces export --url sqlite:///traces.db --out data.jsonl --labelled-only --since 2026-01-01
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from app.traces.record import exported, labelled
from app.traces.store import TraceStore


def export(url: str, out: Path, *, labelled_only: bool = False, since: float | None = None) -> int:
    """Write the traces (oldest first) to `out` atomically; returns how many lines were written."""
    store = TraceStore(url)
    tmp = out.with_name(out.name + ".part")
    n = 0
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in store.rows(since):
                if labelled_only and not labelled(row):
                    continue
                f.write(json.dumps(exported(row, with_reference=labelled_only), ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        store.close()
    return n
