"""Which keys give up rows when the store holds more than `RISE_TRACES_MAX_ROWS`: the key holding
the most rows first (water-filling), so one key's traffic costs that key its own oldest traces
before anyone else's. The store applies it to unlabelled rows first, then (only when labelled
rows alone exceed the cap) to labelled ones.

    .venv/bin/python -m pytest -q tests/traces/test_store.py -k retention
"""

from __future__ import annotations

from typing import Hashable, TypeVar

K = TypeVar("K", bound=Hashable)


def fair_cut(counts: dict[K, int], excess: int) -> tuple[dict[K, int], list[K], int]:
    """How many rows each key loses so that `excess` rows go, always taking from the key that holds
    the most: `(cut, at_level, left)` where every key above a level T loses what it holds above T,
    and `left` (< len(at_level)) more rows go, one each, from as many keys of `at_level` (those left
    holding exactly T; the caller breaks the tie). With `excess` at least the total, every row goes
    (`cut` is `counts`)."""
    counts = {k: n for k, n in counts.items() if n > 0}
    if excess <= 0 or not counts:
        return {}, [], 0
    if excess >= sum(counts.values()):
        return dict(counts), [], 0

    def above(level: int) -> int:
        return sum(n - level for n in counts.values() if n > level)

    lo, hi = 0, max(counts.values())  # above(hi) == 0 <= excess < above(0): find the lowest such level
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if above(mid) > excess else (lo, mid)
    level = hi
    cut = {k: n - level for k, n in counts.items() if n > level}
    at_level = sorted((k for k, n in counts.items() if n >= level), key=lambda k: (k is None, str(k)))
    return cut, at_level, excess - above(level)
