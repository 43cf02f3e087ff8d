"""The FastAPI application: `create_app(settings)` wires routers, error handlers and the engine's
lifecycle (loaded in the background at start-up, so `/health` answers while `/ready` waits).

    rise serve --model models/rise-synth --port 8000
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
import weakref
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import metrics
from app.answers.pool import CheckPool
from app.api import errors
from app.api.admission import Admission
from app.api.middleware import Auth, BodyLimit, RequestId
from app.api.reload import EngineLease, Reloader
from app.api.reload import router as reload_router
from app.api.routes import docs, health, openai, playground, refine
from app.api.routes import metrics as metrics_routes
from app.api.routes import refinements
from app.api.routes import responses
from app.api.routes import verifiers as verifiers_routes
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
        # the loop wants the GIL back after each socket call; behind a worker thread's Python it waited
        # up to the switch interval each time: /health took 35-95 ms at CPython's 5 ms, 8-16 ms at 1 ms
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(settings.switch_interval_ms / 1000)
        loader = None
        if engine is None:
            loader = asyncio.create_task(_load(app, settings))
        app.state.check_pool.start()
        app.state.reloader.start()  # SIGHUP reloads the model (app/api/reload.py)
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
            await app.state.reloader.aclose()  # engines a reload swapped out
            if app.state.engine is not None and engine is None:
                await app.state.engine.aclose()
            sys.setswitchinterval(switch_interval)

    app = FastAPI(title="rise-serve", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Self-refinement (RISE) serving: answer, get feedback, answer again.")
    app.state.settings = settings
    app.state.engine = engine
    app.state.adapters = {}  # LoRA adapters by name: views of the engine (RISE_LORA, app/engines/adapters.py)
    app.state.draining = False  # refusing new requests (app/api/drain.py)
    app.state.leaving = False  # SIGTERM came: /ready answers 503, requests are still served until the drain
    app.state.load_error = None
    app.state.started = int(time.time())
    app.state.engine_failures = 0
    app.state.api_keys = [k.encode() for k in settings.accepted_keys()]
    app.state.check_pool = CheckPool(settings.answer_check_workers, settings.answer_check_timeout_s)
    app.state.verifiers = Verifiers(settings.verifiers)  # one pooled client for the operator's verifier endpoints
    app.state.traces = None  # the trace writer, started with the app when RISE_TRACES_URL is set
    app.state.deadlines = weakref.WeakSet()  # running refinements' deadlines (draining shortens them)
    app.state.admin_keys = [k.encode() for k in settings.admin_keys]  # POST /admin/reload
    app.state.reloader = Reloader(app, settings)  # the served model's version; reloads without downtime
    errors.install(app)
    app.include_router(health.router)
    app.include_router(health.models_router)
    app.include_router(refine.router)
    app.include_router(openai.router)
    app.include_router(responses.router)  # the Responses API, beside chat
    app.include_router(metrics_routes.router)
    app.include_router(refinements.router)
    app.include_router(verifiers_routes.router)  # GET /v1/verifiers: what `verifier` may name
    app.include_router(reload_router)  # POST /admin/reload (RISE_ADMIN_KEYS)
    app.include_router(playground.router)  # the web playground at / (app/api/static/)
    app.mount("/static", playground.static_files(), name="static")
    app.include_router(docs.router)  # /docs and /redoc, their assets from an installed package: no CDN
    app.mount(docs.ASSETS, docs.static_files(), name="docs-assets")
    # outermost last: request id -> metrics -> keys -> whole body (size, time) -> admission -> engine lease -> routes
    app.add_middleware(EngineLease, state=app.state)  # a refinement keeps its engine through a reload
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
        _serve_adapters(app, engine, settings)
        app.state.reloader.adopt(engine, settings.model)
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


def _serve_adapters(app: FastAPI, engine: Engine, settings: Settings) -> None:
    """Each LoRA adapter as an engine of its own name (its refinement metrics under that name)."""
    from app.engines.adapters import adapter_engines

    app.state.adapters = adapter_engines(engine, settings.lora)
    for name in app.state.adapters:
        metrics.init_series(name)


async def open_configured(settings: Settings, model: str, model_name: str | None = None) -> Engine:
    """The engine `settings` describe, on `model` (at start-up RISE_MODEL; a reload's directory, served
    under the same name: app/api/reload.py)."""
    from app.engines.factory import open_engine

    return await open_engine(
        settings.engine, model, strict=False, device=settings.device,
        max_batch_size=settings.max_batch_size, base_url=settings.base_url, api_key=settings.api_key_upstream,
        model_name=model_name or settings.model_name, engine_args=settings.engine_args,
        prefix_cache_mb=settings.prefix_cache_mb, timeout_s=settings.request_timeout_s, cuda_graphs=settings.cuda_graphs,
        lora=settings.lora, session_header=settings.upstream_session_header, speculative=settings.speculation())


async def _load(app: FastAPI, settings: Settings) -> None:
    try:
        app.state.engine = await open_configured(settings, str(settings.model))
        _instrument(app.state.engine)
        _serve_adapters(app, app.state.engine, settings)
        app.state.reloader.adopt(app.state.engine, settings.model)
        # the model's objects live as long as the process: moved out of the collector's reach, a full
        # collection no longer walks them (170-190 ms holding the GIL, /health waiting behind it)
        gc.collect()
        gc.freeze()
        log.info("engine ready: %s", app.state.engine.info.model_name)
    except Exception as e:  # noqa: BLE001 - reported through /ready and the log
        app.state.load_error = f"engine failed to load: {e}"
        log.error(app.state.load_error)
