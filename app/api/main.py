"""The FastAPI application: `create_app(settings)` wires routers, error handlers and the engine's
lifecycle (loaded in the background at start-up, so `/health` answers while `/ready` waits).

    rise serve --model models/rise-synth --port 8000
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import metrics
from app.answers.pool import CheckPool
from app.api import errors
from app.api.admission import Admission
from app.api.middleware import Auth, BodyLimit, RequestId
from app.api.routes import docs, health, openai, playground, refine
from app.api.routes import metrics as metrics_routes
from app.api.routes import refinements
from app.api.routes import responses
from app.config import Settings
from app.engines.base import Engine
from app.verifiers.registry import Verifiers
from app.traces.service import start_writer

log = logging.getLogger("rise.api")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """An app over `engine`, or over the engine `settings` describe (loaded at start-up)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loader = None
        if engine is None:
            loader = asyncio.create_task(_load(app, settings))
        app.state.check_pool.start()
        app.state.traces = start_writer(settings)  # None when traces are off
        try:
            yield
        finally:
            app.state.draining = True
            await app.state.check_pool.aclose()
            await app.state.verifiers.aclose()
            if app.state.traces is not None:  # what is queued is written (or counted as dropped)
                await asyncio.to_thread(app.state.traces.close, 10.0)
            if loader is not None and not loader.done():
                loader.cancel()
            if app.state.engine is not None and engine is None:
                await app.state.engine.aclose()

    app = FastAPI(title="rise-serve", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Self-refinement (RISE) serving: answer, get feedback, answer again.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.draining = False
    app.state.load_error = None
    app.state.started = int(time.time())
    app.state.engine_failures = 0
    app.state.api_keys = [k.encode() for k in settings.accepted_keys()]
    app.state.check_pool = CheckPool(settings.answer_check_workers, settings.answer_check_timeout_s)
    app.state.verifiers = Verifiers(settings.verifiers)  # one pooled client for the operator's verifier endpoints
    app.state.traces = None  # the trace writer, started with the app when RISE_TRACES_URL is set
    app.state.deadlines = weakref.WeakSet()  # running refinements' deadlines (draining shortens them)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(health.models_router)
    app.include_router(refine.router)
    app.include_router(openai.router)
    app.include_router(responses.router)  # the Responses API, beside chat
    app.include_router(metrics_routes.router)
    app.include_router(refinements.router)
    app.include_router(playground.router)  # the web playground at / (app/api/static/)
    app.mount("/static", playground.static_files(), name="static")
    app.include_router(docs.router)  # /docs and /redoc, their assets from an installed package: no CDN
    app.mount(docs.ASSETS, docs.static_files(), name="docs-assets")
    # outermost last: request id -> metrics -> keys -> whole body (size, time) -> admission -> routes
    app.add_middleware(Admission, state=app.state, max_in_flight=settings.max_in_flight,
                       max_queue=settings.max_queue, model_name=lambda: served_name(app))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s,
                       state=app.state)
    app.add_middleware(Auth, keys=app.state.api_keys)
    app.add_middleware(metrics.MetricsMiddleware, model_name=lambda: served_name(app))
    app.add_middleware(RequestId)
    metrics.watch_engine(lambda: app.state.engine)
    if engine is not None:
        _instrument(engine)
    return app


def served_name(app: FastAPI) -> str:
    engine = app.state.engine
    if engine is not None:
        return engine.info.model_name
    settings = app.state.settings
    return settings.model_name or settings.model.name


def _instrument(engine: Engine) -> None:
    name = engine.info.model_name
    metrics.BUILD_INFO.labels("0.1.0", name, engine.info.extra.get("engine", "unknown")).set(1)
    metrics.init_series(name)
    if hasattr(engine, "on_batch"):
        engine.on_batch = metrics.BATCH_SIZE.labels(name).observe


async def _load(app: FastAPI, settings: Settings) -> None:
    from app.engines.factory import open_engine

    try:
        app.state.engine = await open_engine(
            settings.engine, str(settings.model), strict=False, device=settings.device,
            max_batch_size=settings.max_batch_size, base_url=settings.base_url, api_key=settings.api_key_upstream,
            model_name=settings.model_name, engine_args=settings.engine_args, prefix_cache_mb=settings.prefix_cache_mb,
            timeout_s=settings.request_timeout_s, cuda_graphs=settings.cuda_graphs)
        _instrument(app.state.engine)
        # the model's objects live as long as the process: moved out of the collector's reach, a full
        # collection no longer walks them (170-190 ms holding the GIL, /health waiting behind it)
        gc.collect()
        gc.freeze()
        log.info("engine ready: %s", app.state.engine.info.model_name)
    except Exception as e:  # noqa: BLE001 - reported through /ready and the log
        app.state.load_error = f"engine failed to load: {e}"
        log.error(app.state.load_error)
