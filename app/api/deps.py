"""Dependencies the routes declare with `Annotated`: settings, the engine, deadlines. (API keys are
checked by the `Auth` middleware, before admission and before the body is read.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.errors import ApiError
from app.config import Settings
from app.engines.base import Engine
from app.refine.deadline import Deadline


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    """The engine the request holds (a refinement keeps the one it was let in on through a model
    reload: app/api/reload.py), else the one served now."""
    engine = getattr(request.state, "engine", None) or getattr(request.app.state, "engine", None)
    if engine is None:
        raise ApiError(503, "the model is still loading; retry shortly", code="not_ready", headers={"Retry-After": "2"})
    return engine


def deadline_for(request: Request, timeout: float | None) -> Deadline:
    """When this request's refinement must end: its own `timeout`, within the configured cap. The
    server keeps it, so that draining can bring it forward."""
    state = request.app.state
    cap = state.settings.request_timeout_s
    deadline = Deadline.after(min(timeout, cap) if timeout else cap)
    grace = getattr(state, "drain_until", None)
    if grace is not None:
        deadline.shorten_to(grace)
    state.deadlines.add(deadline)
    return deadline


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
