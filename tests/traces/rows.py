"""Trace rows for store and writer tests, built by the real `build_row` from real result types."""

from __future__ import annotations

from app.refine.types import RefineConfig, RefineResult, Sample, Turn
from app.traces.record import build_row
from app.traces.store import TraceStore
from app.traces.schema import new_id

QUESTION = "Sam has 2 pens. He buys 3 more. How many pens does Sam have now?"


def result(answer: str = "5", turns: int = 2) -> RefineResult:
    ts = [Turn(i, [Sample(f"2+3={answer}. The answer is {answer}.", answer, None, 20, 12, "stop", confidence=0.9)],
               0, 0.01 * i, 0.002) for i in range(1, turns + 1)]
    return RefineResult(answer, ts[-1].text, turns, {answer: turns}, "max_turns", ts, False, None)


def row(key_id: str | None = None, created: float | None = None, reference: str | None = None,
        keep: bool = False, **kw) -> dict:
    return build_row(new_id("rr"), route="/v1/refine", model="rise-synth", engine="hf", question=QUESTION,
                     config=RefineConfig(max_turns=2), results=[result(**kw)], key_id=key_id, reference=reference,
                     keep_reference=keep, created=created)


def stored_ids(url: str) -> set[str]:
    """The ids the store at `url` holds now (read with a store of its own)."""
    s = TraceStore(url)
    try:
        return {r["id"] for r in s.rows()}
    finally:
        s.close()
