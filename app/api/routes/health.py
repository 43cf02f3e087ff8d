"""Liveness (`/health`), readiness (`/ready`) and the model list (`/v1/models`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import EngineDep

router = APIRouter(tags=["health"])
models_router = APIRouter(tags=["openai"])


@router.get("/health", summary="The process is alive")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", summary="The model is loaded and the engine answers",
            responses={503: {"description": "not ready (loading, draining or engine down)"}})
async def ready(request: Request):
    state = request.app.state
    engine = getattr(state, "engine", None)
    if engine is None or getattr(state, "draining", False):
        reason = "draining" if getattr(state, "draining", False) else getattr(state, "load_error", None) or "loading"
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503, headers={"Retry-After": "2"})
    limit = state.settings.engine_failures_unready
    if getattr(state, "engine_failures", 0) >= limit:
        return JSONResponse({"status": "not ready", "reason": f"the last {limit} or more requests failed in the engine"},
                            status_code=503, headers={"Retry-After": "5"})
    try:
        ok = await engine.health()
    except Exception as e:  # noqa: BLE001
        ok, reason = False, f"engine health check failed: {type(e).__name__}"
    else:
        reason = "engine unhealthy"
    if not ok:
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503, headers={"Retry-After": "2"})
    return {"status": "ready", "model": engine.info.model_name, "engine": engine.info.extra.get("engine")}


@models_router.get("/v1/models", summary="The served model")
async def models(engine: EngineDep, request: Request) -> dict:
    info = engine.info
    return {"object": "list", "data": [{"id": info.model_name, "object": "model", "created": request.app.state.started,
                                        "owned_by": "rise-serve", "max_model_len": info.max_context}]}
