"""Liveness (`/health`), readiness (`/ready`) and the model list (`/v1/models`).

`/ready` answers 503 with a `reason`: `loading`, `load_failed`, `draining`, `upstream_unavailable`
(the remote engine's upstream does not answer), `engine_unhealthy` (the engine's own check failed)
or `engine_failures` (the last `RISE_ENGINE_FAILURES_UNREADY` requests failed in the engine).
With traces on, a ready answer carries `traces`: `{"status": "ok" | "degraded", "reason", "queued",
"dropped"}`; a degraded store keeps the 200. After
such failures each probe tries a one-token generation; once one succeeds the count is reset, so a
pod that left a load balancer's rotation comes back without traffic. Each answer sets the gauge
`rise_ready` (1 or 0), which the RiseServeNotReady alert watches. A shipped model's card in
`/v1/models` says that it knows only its synthetic arithmetic (`description`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app import metrics
from app.api.deps import EngineDep
from app.config import SHIPPED, Settings
from app.engines.base import SamplingParams

router = APIRouter(tags=["health"])
models_router = APIRouter(tags=["openai"])


@router.get("/health", summary="The process is alive")
async def health() -> dict:
    return {"status": "ok"}


def _not_ready(reason: str, detail: str, retry_after: int = 2) -> JSONResponse:
    return JSONResponse({"status": "not ready", "reason": reason, "detail": detail}, status_code=503,
                        headers={"Retry-After": str(retry_after)})


@router.get("/ready", summary="The model is loaded and the engine answers",
            responses={503: {"description": "not ready: loading, load_failed, draining, upstream_unavailable, "
                                            "engine_unhealthy or engine_failures"}})
async def ready(request: Request):
    from app.api.main import served_name  # main imports this module

    answer = await _readiness(request)
    metrics.set_ready(served_name(request.app), not isinstance(answer, JSONResponse))
    return answer


async def _readiness(request: Request):
    """A 503 JSONResponse with the reason, or the ready body."""
    state = request.app.state
    engine = getattr(state, "engine", None)
    if getattr(state, "draining", False):
        return _not_ready("draining", "the server is shutting down and refuses new requests")
    if getattr(state, "leaving", False):  # the first step of a drain (app/api/drain.py)
        return _not_ready("draining", "the server is shutting down; it still serves requests until the drain "
                                      "starts (RISE_DRAIN_READY_DELAY_S)")
    if engine is None:
        load_error = getattr(state, "load_error", None)
        return _not_ready("load_failed", load_error) if load_error else _not_ready("loading", "the model is loading")
    remote = engine.info.extra.get("engine") == "openai"
    try:
        ok, detail = await engine.health(), "the engine's health check failed"
    except Exception as e:  # noqa: BLE001
        ok, detail = False, f"the engine's health check raised {type(e).__name__}"
    if not ok:
        if remote:
            return _not_ready("upstream_unavailable", f"the upstream {engine.info.extra.get('base_url')} does not answer")
        return _not_ready("engine_unhealthy", detail)
    failures = getattr(state, "engine_failures", 0)
    if failures >= state.settings.engine_failures_unready:
        if not await _generates(engine):
            return _not_ready("engine_failures", f"the last {failures} requests failed in the engine and a one-token "
                                                 "probe failed too", 5)
        state.engine_failures = 0  # the engine generates again: what failed before no longer keeps it out
    body = {"status": "ready", "model": engine.info.model_name, "engine": engine.info.extra.get("engine")}
    traces = getattr(state, "traces", None)
    if traces is not None:  # a degraded trace store is reported, never a reason to turn traffic away
        body["traces"] = traces.health()
    return body


async def _generates(engine, timeout_s: float = 10.0) -> bool:
    """A one-token generation: after failures in a row, the probe that says the engine works again."""
    try:
        await asyncio.wait_for(engine.generate([[{"role": "user", "content": "1"}]], SamplingParams(max_tokens=1)),
                               timeout_s)
        return True
    except Exception:  # noqa: BLE001 - any failure means "still failing"
        return False


SHIPPED_NOTE = ("The shipped demo model: it knows only the synthetic arithmetic word problems it was trained on "
                "(e.g. 'Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have "
                "now?'); any other question gets garbage. Serve a real model with: rise serve --model PATH.")


def model_note(settings: Settings) -> str | None:
    """What the served model's card says of it: a note for the shipped synthetic models (a local
    engine on a directory named like one of them), None for any other model."""
    if settings.engine == "openai" or Path(settings.model).name not in SHIPPED:
        return None
    return SHIPPED_NOTE


@models_router.get("/v1/models", summary="The served model and its LoRA adapters (each with `parent`: the model)")
async def models(engine: EngineDep, request: Request) -> dict:
    info = engine.info
    card = {"id": info.model_name, "object": "model", "created": request.app.state.started,
            "owned_by": "rise-serve", "max_model_len": info.max_context,
            "version": request.app.state.reloader.version}  # changes with a reload (app/api/reload.py)
    if note := model_note(request.app.state.settings):
        card["description"] = note
    adapters = [{"id": name, "object": "model", "created": card["created"], "owned_by": "rise-serve",
                 "max_model_len": info.max_context, "parent": info.model_name}
                for name in getattr(request.app.state, "adapters", None) or {}]  # RISE_LORA, as vLLM lists them
    return {"object": "list", "data": [card, *adapters]}
