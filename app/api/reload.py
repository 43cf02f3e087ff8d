"""Switching to a new model without downtime: `POST /admin/reload` (a key of RISE_ADMIN_KEYS) or
SIGHUP loads a model directory beside the one being served, then swaps the whole engine object at
the app level. A refinement holds the engine it started on (its lease, taken when admission lets it
in) until its last byte is sent, so it finishes on the weights it started with; the old engine is
closed once its last lease ends. Nothing is refused meanwhile: `/ready` stays 200 and requests keep
coming to the old engine until the new one is in place.

- `POST /admin/reload` `{"model": PATH}` (PATH left out: the directory served now) answers once the
  new engine serves: `{"model", "version", "previous_version", "path", "finishing_on_previous"}` (the
  requests still running on the old engine); SIGHUP reloads the
  directory served now (RISE_MODEL until a reload names another), e.g. after its files were replaced.
- The served name stays (a client's `model` keeps working); the version tells the two apart: a
  fingerprint of the directory's config and weight files (names, sizes, their first and last MiB),
  in `/v1/models` (`version`) and in the `rise_model_info{model_name,version}` gauge.
- A reload that fails (not a model directory: 400; the load fails: 422) leaves the old engine
  serving; one already under way is a 409; while draining, a 503.

    curl -X POST 127.0.0.1:8000/admin/reload -H "Authorization: Bearer $ADMIN_KEY" -H 'content-type: application/json' -d '{"model": "models/base-synth"}'
    kill -HUP $(pgrep -f "rise serve")
    .venv/bin/pytest -q -n 0 tests/api/test_reload.py
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import signal
import threading
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app import metrics
from app.api.admission import GUARDED
from app.api.errors import ApiError
from app.api.middleware import key_matches
from app.api.protocol_refine import one_line
from app.config import model_problem

log = logging.getLogger("rise.api")
WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
EDGE = 1 << 20  # bytes read from each end of a weight file for the fingerprint


def model_version(path: str | Path) -> str:
    """A short fingerprint of an HF model directory: its config.json and each weight file's name,
    size, first and last MiB (cheap for a model of any size, and changes when the weights do)."""
    folder = Path(path)
    digest = hashlib.sha256()
    for file in [folder / "config.json", *sorted(f for pattern in WEIGHTS for f in folder.glob(pattern))]:
        if not file.is_file():
            continue
        size = file.stat().st_size
        digest.update(f"{file.name}\0{size}\0".encode())
        with file.open("rb") as f:
            digest.update(f.read(EDGE))
            if size > 2 * EDGE:
                f.seek(size - EDGE)
                digest.update(f.read(EDGE))
    return digest.hexdigest()[:12]


class EngineLease:
    """ASGI middleware, inside admission: a refinement route's request holds the engine (and its
    LoRA adapters) being served when it was let in, as `request.state.engine`, until its response
    has been sent (a stream to its last byte)."""

    def __init__(self, app, state) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        engine = getattr(self.state, "engine", None)
        if scope["type"] != "http" or scope["path"] not in GUARDED or engine is None:
            return await self.app(scope, receive, send)
        reloader: Reloader = self.state.reloader
        reloader.hold(engine)
        held = scope.setdefault("state", {})
        held["engine"], held["adapters"] = engine, getattr(self.state, "adapters", {})
        try:
            await self.app(scope, receive, send)
        finally:
            reloader.let_go(engine)


class Reloader:
    """The served engine's version, the leases on each engine, and reloads (one at a time)."""

    def __init__(self, app, settings) -> None:
        self.app, self.settings = app, settings
        self.path = str(settings.model)
        self.version: str | None = None
        self._leases: dict[int, int] = {}
        self._retired: dict[int, object] = {}  # engines swapped out, closed when their last lease ends
        self._tasks: set[asyncio.Task] = set()
        self._busy = False
        self._sighup = False

    # leases
    def hold(self, engine) -> None:
        self._leases[id(engine)] = self._leases.get(id(engine), 0) + 1

    def let_go(self, engine) -> None:
        left = self._leases.get(id(engine), 1) - 1
        if left > 0:
            self._leases[id(engine)] = left
            return
        self._leases.pop(id(engine), None)
        if id(engine) in self._retired:
            self._spawn(self._close(self._retired.pop(id(engine))))

    def running_on(self, engine) -> int:
        """Requests holding `engine` now."""
        return self._leases.get(id(engine), 0)

    # the served model
    def adopt(self, engine, path: str | Path) -> None:
        """`engine` (on `path`) is the one served: its version in /v1/models and rise_model_info."""
        self.path = str(path)
        remote = engine.info.extra.get("engine") == "openai"
        self.version = "remote" if remote else model_version(path)
        metrics.MODEL_INFO.clear()
        metrics.MODEL_INFO.labels(engine.info.model_name, self.version).set(1)

    async def reload(self, path: str | None = None) -> dict:
        """Load `path` (default: the directory served now) beside the served engine, then swap."""
        state = self.app.state
        if getattr(state, "draining", False) or getattr(state, "leaving", False):
            raise ApiError(503, "the server is shutting down; nothing is reloaded", code="not_ready",
                           headers={"Retry-After": "2"})
        old = getattr(state, "engine", None)
        if old is None:
            raise ApiError(503, "the model is still loading; reload once it serves", code="not_ready",
                           headers={"Retry-After": "2"})
        if self._busy:
            raise ApiError(409, "a reload is already under way; retry once it ends", code="reload_in_progress")
        path = str(path or self.path)
        remote = self.settings.engine == "openai"
        if not remote and (problem := model_problem(path)):
            raise ApiError(400, problem, "model")
        self._busy = True
        try:
            from app.api.main import _instrument, _serve_adapters, open_configured  # main imports this module

            name = old.info.model_name  # the served name stays: clients' `model` keeps working
            log.info("reloading: %s (served as %s)", path, name)
            try:
                new = await open_configured(self.settings, path, model_name=name)
            except Exception as e:  # noqa: BLE001 - the old engine keeps serving
                log.error("reload failed, still serving version %s: %s", self.version, e)
                raise ApiError(422, f"the model at {path} failed to load: {e}; still serving version "
                                    f"{self.version}", "model", "reload_failed") from None
            previous = self.version
            _instrument(new)
            _serve_adapters(self.app, new, self.settings)  # the new engine's adapters, for requests from now on
            state.engine = new
            state.engine_failures = 0
            self.adopt(new, path)
            held = self.running_on(old)
            self._retire(old)
            log.info("reloaded: version %s -> %s; %d request(s) finish on the old engine", previous, self.version, held)
            return {"model": name, "version": self.version, "previous_version": previous, "path": path,
                    "finishing_on_previous": held}
        finally:
            self._busy = False

    def _retire(self, engine) -> None:
        if self.running_on(engine):
            self._retired[id(engine)] = engine
        else:
            self._spawn(self._close(engine))

    async def _close(self, engine) -> None:
        try:
            await engine.aclose()
        except Exception as e:  # noqa: BLE001
            log.error("closing the old engine failed: %s", type(e).__name__)
        # the start-up load froze the first model's objects out of the collector's reach (app/api/main.py):
        # let it have them back, then freeze what is served now
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.info("the old engine is closed")

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # SIGHUP and the app's lifespan
    def start(self) -> None:
        """SIGHUP reloads the directory served now (only where the loop runs in the main thread)."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
            return
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: self._spawn(self._on_sighup()))
            self._sighup = True
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    async def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading %s", self.path)
        try:
            await self.reload(None)
        except ApiError as e:
            log.error("SIGHUP reload refused: %s", e.message)

    async def aclose(self) -> None:
        """At shutdown: stop listening for SIGHUP, close the retired engines (their requests ended)."""
        if self._sighup:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        for engine in list(self._retired.values()):
            self._spawn(self._close(engine))
        self._retired.clear()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    model: str | None = Field(None, min_length=1, max_length=4096,
                              description="the model directory to serve; left out: the one served now (re-read)")
    _model = field_validator("model")(one_line)


router = APIRouter(tags=["admin"])


def _admin_key(request: Request) -> None:
    """The route's dependency: checked before its body is validated, so a client without the key
    learns nothing about what the route accepts."""
    keys = request.app.state.admin_keys
    if not keys:
        raise ApiError(403, "reloading over HTTP is off: set RISE_ADMIN_KEYS (SIGHUP still reloads)",
                       code="admin_disabled")
    if not key_matches(keys, request.headers.get("authorization", "").encode("latin-1")):
        raise ApiError(401, "missing or invalid admin key: send 'Authorization: Bearer ADMIN_KEY' (RISE_ADMIN_KEYS)",
                       code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


@router.post("/admin/reload", summary="Serve a new model directory without dropping a request (an admin key)",
             responses={400: {"description": "not a model directory"}, 401: {"description": "no admin key"},
                        403: {"description": "RISE_ADMIN_KEYS is unset"}, 409: {"description": "a reload is under way"},
                        422: {"description": "the model failed to load"}}, dependencies=[Depends(_admin_key)])
async def reload_route(request: Request, body: ReloadRequest | None = None) -> dict:
    return await request.app.state.reloader.reload(body.model if body else None)

