"""Dependencies the routes declare with `Annotated`: settings, the engine, answer checkers."""

from __future__ import annotations

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


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
