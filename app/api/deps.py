"""Dependencies the routes declare with `Annotated`: settings, the engine, answer checkers."""

from __future__ import annotations

import hmac
import time
from typing import Annotated

from fastapi import Depends, Request

from app.api.errors import ApiError
from app.config import Settings
from app.engines.base import Engine


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    engine = getattr(request.app.state, "engine", None)
    if engine is None:
        raise ApiError(503, "the model is still loading; retry shortly", code="not_ready", headers={"Retry-After": "2"})
    return engine


def require_key(request: Request) -> None:
    """When keys are configured, every /v1 route needs `Authorization: Bearer KEY` (constant-time
    comparison against every accepted key, so timing says nothing about which prefix matched)."""
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    token = given.strip().encode() if scheme.lower() == "bearer" else b""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token, key)
    if not ok:
        raise ApiError(401, "missing or invalid API key: send 'Authorization: Bearer KEY'", code="invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})


def deadline_for(request: Request, timeout: float | None) -> float:
    """When this request's refinement must end: its own `timeout`, within the configured cap."""
    cap = request.app.state.settings.request_timeout_s
    return time.monotonic() + (min(timeout, cap) if timeout else cap)


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
