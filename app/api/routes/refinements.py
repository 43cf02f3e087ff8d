"""Stored refinements: read, list, label (feedback) and delete them (`RISE_TRACES_URL`).

- 409 when traces are off; 404 for an unknown or malformed id, and for a trace another key made
  (never 403, so that ids cannot be probed); 400 for bad feedback; 503 when the store fails.
- Calls on the replica that served a refinement wait (up to 5 s) for its pending write, so a trace
  is readable as soon as its response was acknowledged. Meanwhile DELETE wins over the write (the
  writer leaves the row out or deletes it right after) and feedback is held until the row exists;
  a write still pending after 5 s (a slow store) is a 503 `trace_pending` with Retry-After, never
  a 404. Another replica cannot see that pending write: there the trace is a 404 until the
  serving replica's writer committed it (usually milliseconds; longer while the store is slow).

    .venv/bin/python -m pytest -q tests/api/test_refinements.py
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.exc import SQLAlchemyError

from app.api.errors import ApiError
from app.api.json_body import OffLoopJSONRoute
from app.api.protocol_traces import Deleted, FeedbackRequest, TraceList, TraceOut
from app.traces.record import public
from app.traces.schema import valid_id
from app.traces.store import TraceStore
from app.traces.writer import TraceWriter

router = APIRouter(tags=["traces"], route_class=OffLoopJSONRoute)  # large bodies decoded off the loop
SETTLE_S = 5.0  # how long a read waits for this process's own pending write of the trace
# The routes' store calls run on threads of their own: a slow or locked store (each call may wait
# SETTLE_S and the busy timeout) then holds up these routes only, never the event loop's default
# executor, where refinements run their verifier checks.
_STORE_THREADS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="rise-trace-route")


def get_traces(request: Request) -> TraceWriter:
    writer = getattr(request.app.state, "traces", None)
    if writer is None:
        raise ApiError(409, "traces are off on this server (set RISE_TRACES_URL to keep them)", code="traces_off")
    return writer


def get_key_id(request: Request) -> str | None:
    """The id of the key that made this request (None when keys are off)."""
    return getattr(request.state, "key_id", None)


TracesDep = Annotated[TraceWriter, Depends(get_traces)]
KeyIdDep = Annotated[str | None, Depends(get_key_id)]
NOT_FOUND = "no refinement with id '{}'"


@router.get("/v1/refinements/{trace_id}", response_model=TraceOut, summary="A stored refinement",
            responses={404: {"description": "unknown id"}, 409: {"description": "traces are off"},
                       503: {"description": "its write is still pending (Retry-After), or the store fails"}})
async def get_refinement(trace_id: str, traces: TracesDep, key_id: KeyIdDep) -> dict:
    row = await _on_store(traces, trace_id, key_id, lambda s: s.get(trace_id, key_id))
    if row is None:
        raise ApiError(404, NOT_FOUND.format(_shown(trace_id)), "id", "not_found")
    return public(row)


@router.get("/v1/refinements", response_model=TraceList, summary="Stored refinements, newest first",
            responses={409: {"description": "traces are off"}})
async def list_refinements(traces: TracesDep, key_id: KeyIdDep,
                           limit: Annotated[int, Query(ge=1, le=100)] = 20,
                           before: Annotated[str | None, Query(description="a trace id: list what is older")] = None) -> dict:
    if before is not None and not valid_id(before):
        raise ApiError(400, "before must be the id of a stored refinement", "before")
    page = await _on_store(traces, before, key_id, lambda s: s.page(key_id, limit, before))
    if page is None:
        raise ApiError(400, "before names no stored refinement", "before")
    rows, more = page
    return {"object": "list", "data": [public(r) for r in rows], "has_more": more}


@router.post("/v1/refinements/{trace_id}/feedback", response_model=TraceOut, summary="Label a served answer",
             description="`rating` (1 right, -1 wrong), `reference` (the right answer; kept only with "
                         "RISE_TRACES_KEEP_REFERENCES, never shown) and `comment`. Repeated feedback: the last one "
                         "wins, replacing the earlier one whole.",
             responses={400: {"description": "bad feedback"}, 404: {"description": "unknown id"},
                        409: {"description": "traces are off, or a reference while references are not kept"},
                        503: {"description": "its write is still pending: the feedback is held (Retry-After)"}})
async def feedback(trace_id: str, body: FeedbackRequest, traces: TracesDep, key_id: KeyIdDep, request: Request) -> dict:
    if not valid_id(trace_id):
        raise ApiError(404, NOT_FOUND.format(_shown(trace_id)), "id", "not_found")
    if body.reference is not None and not request.app.state.settings.traces_keep_references:
        raise ApiError(409, "references are not stored on this server (RISE_TRACES_KEEP_REFERENCES is off): send "
                            "rating and comment only", "reference", "references_not_kept")
    values = {"rating": body.rating, "comment": body.comment, "reference": body.reference}
    row = await _on_store(traces, trace_id, key_id, lambda s: s.set_feedback(trace_id, key_id, **values),
                          mark=lambda: traces.hold_feedback(trace_id, key_id, values),
                          still="the feedback is held and attaches once it is: retry to confirm (repeating it is "
                                "safe, the last feedback wins)")
    if row is None:
        raise ApiError(404, NOT_FOUND.format(_shown(trace_id)), "id", "not_found")
    return public(row)


@router.delete("/v1/refinements/{trace_id}", response_model=Deleted, summary="Delete a stored refinement",
               responses={404: {"description": "unknown id"}, 409: {"description": "traces are off"},
                          503: {"description": "its write is still pending: it is marked for deletion (Retry-After)"}})
async def delete_refinement(trace_id: str, traces: TracesDep, key_id: KeyIdDep) -> dict:
    gone = await _on_store(traces, trace_id, key_id, lambda s: traces.gone(trace_id, key_id) or s.delete(trace_id, key_id),
                           mark=lambda: traces.forget(trace_id, key_id),
                           still="it is marked for deletion and removed as soon as the write ends: retry to confirm")
    if not gone:
        raise ApiError(404, NOT_FOUND.format(_shown(trace_id)), "id", "not_found")
    return {"id": trace_id, "object": "refinement.deleted", "deleted": True}


async def _on_store(writer: TraceWriter, trace_id: str | None, key_id: str | None, op: Callable[[TraceStore], object],
                    mark: Callable[[], bool] | None = None, still: str = "retry shortly"):
    """`op` on the store in a thread, once this process's pending write of `trace_id` (this key's)
    settled. `mark` (true when that write is pending) first tells the writer what the call wants
    of the row meanwhile: forget it, or label it. A write still pending after SETTLE_S is a 503
    with Retry-After saying `still`; a malformed id a 404 without touching the store; a failing
    store a 503."""
    if trace_id is not None and not valid_id(trace_id):
        return None
    pending = mark or (lambda: writer.pending(trace_id, key_id))

    def run():
        if trace_id is not None and pending() and not writer.wait_written(trace_id, SETTLE_S):
            return _STILL_WRITING
        return op(writer.store)

    try:
        out = await asyncio.get_running_loop().run_in_executor(_STORE_THREADS, contextvars.copy_context().run, run)
    except SQLAlchemyError as e:
        raise ApiError(503, f"the trace store is unavailable ({writer.store.fault(e)}); retry shortly",
                       code="trace_store_unavailable", headers={"Retry-After": "2"}) from None
    if out is _STILL_WRITING:
        raise ApiError(503, f"refinement '{trace_id}' is still being written to the trace store (a slow store); {still}",
                       code="trace_pending", headers={"Retry-After": "2"})
    return out


_STILL_WRITING = object()


def _shown(trace_id: str) -> str:
    """An id as an error message may quote it: short and printable."""
    text = "".join(c if c.isprintable() and c.isascii() else "?" for c in trace_id[:64])
    return text + ("..." if len(trace_id) > 64 else "")
