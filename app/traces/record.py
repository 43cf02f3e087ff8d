"""What one stored refinement holds, built from the loop's results (a row for the store), and
how a row reads back (the object `GET /v1/refinements/{id}` answers: never the reference).

    .venv/bin/python -m pytest -q tests/traces/test_store.py
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from app.refine.types import RefineConfig, RefineResult


def build_row(trace_id: str, *, route: str, model: str, engine: str, question: str, config: RefineConfig,
              results: list[RefineResult], key_id: str | None = None, reference: str | None = None,
              keep_reference: bool = False, history: list[dict] | None = None,
              created: float | None = None, response: dict | None = None, task: str | None = None) -> dict[str, Any]:
    """A row of `rise_traces`: every choice's turns (text, answer, tokens, latency, confidence),
    the final answer, stop reason, config and the task it was scored under (what training scores it
    with). `reference` is kept only with `keep_reference`; `response` is what a stored Responses API
    response echoes (its instructions, metadata, ...)."""
    choices = [r.to_dict() for r in results]
    first = results[0]
    body = {"config": _config(config), "history": history or [], "choices": choices}
    if task is not None:
        body["task"] = task
    if response is not None:
        body["response"] = response
    return {"id": trace_id, "created": time.time() if created is None else created, "key_id": key_id,
            "model": model, "engine": engine, "route": route, "question": question,
            "final_answer": first.final_answer, "stop_reason": first.stop_reason,
            "body": json.dumps(body, separators=(",", ":"), ensure_ascii=False),
            "reference": reference if keep_reference else None,
            "fb_rating": None, "fb_comment": None, "fb_reference": None, "fb_at": None}


def _config(config: RefineConfig) -> dict:
    d = dataclasses.asdict(config)
    d.pop("feedback", None)  # the feedback template is the server's, the same for every trace
    sampling = d.get("sampling") or {}
    sampling["stop"] = list(sampling.get("stop") or ())
    return d


def public(row: dict) -> dict:
    """The trace as routes show it: choice 0's result at the top (with `choices` when there were
    several), the feedback without its reference (only whether one was given)."""
    body = json.loads(row["body"])
    choices = body.get("choices") or []
    out = {"id": row["id"], "object": "refinement.trace", "created": row["created"], "model": row["model"],
           "engine": row["engine"], "route": row["route"], "question": row["question"], "task": body.get("task"),
           "history": body.get("history") or [], "config": body.get("config") or {}}
    out.update(choices[0] if choices else {})
    out.pop("reference", None)
    if len(choices) > 1:
        out["choices"] = choices
    out["feedback"] = feedback_of(row)
    return out


def feedback_of(row: dict) -> dict | None:
    if row.get("fb_at") is None:
        return None
    return {"rating": row["fb_rating"], "comment": row["fb_comment"],
            "reference_given": row["fb_reference"] is not None, "at": row["fb_at"]}


def labelled(row: dict) -> bool:
    """Whether a trace carries a label training can use: a reference (feedback's or the oracle's)
    or a rating."""
    return row.get("fb_rating") is not None or row.get("fb_reference") is not None or row.get("reference") is not None


def exported(row: dict, with_reference: bool) -> dict:
    """One line of `rise traces export`: the trace, its feedback, and (labelled exports only) the
    reference: feedback's when given, else the oracle's."""
    out = public(row)
    out["key_id"] = row.get("key_id")
    if out["feedback"] is not None:
        out["feedback"] = {k: v for k, v in out["feedback"].items() if k != "reference_given"}
    if with_reference:
        out["reference"] = row.get("fb_reference") or row.get("reference")
    return out
