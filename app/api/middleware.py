"""ASGI middleware for reliability: request ids, body-size limits, admission control.

- RequestId: honours a sane `X-Request-ID` (or makes one), returns it, and puts it in the logs.
- BodyLimit: a body over `max_body_bytes` is a 413 before the route sees it.
- Admission: at most `max_in_flight` refinements run and `max_queue` wait; past that a 429 with
  `Retry-After`, and a 503 while the model is not ready or the server is draining. Bounded: no
  request waits in an unbounded buffer.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import uuid

from app import metrics
from app.api.errors import error_body

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
GUARDED = ("/v1/refine", "/v1/chat/completions")


async def send_error(send, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(status, message, None, code)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestId:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await send_error(send, 413, f"request body is larger than {self.max_bytes} bytes", "body_too_large")
        seen = 0
        started = False

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await send_error(send, 413, f"request body is larger than {self.max_bytes} bytes", "body_too_large")


class Admission:
    def __init__(self, app, state, max_in_flight: int, max_queue: int, model_name) -> None:
        self.app, self.state = app, state
        self.max_in_flight, self.max_queue = max_in_flight, max_queue
        self.model_name = model_name
        self.running = 0
        self.waiting = 0
        self._cond: asyncio.Condition | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in GUARDED or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        model = self.model_name()
        if getattr(self.state, "draining", False) or getattr(self.state, "engine", None) is None:
            metrics.SHED.labels(model, "not_ready").inc()
            reason = "shutting down" if getattr(self.state, "draining", False) else "the model is not ready"
            return await send_error(send, 503, f"{reason}; retry shortly", "not_ready", {"Retry-After": "2"})
        if self._cond is None:
            self._cond = asyncio.Condition()
        async with self._cond:
            if self.running >= self.max_in_flight:
                if self.waiting >= self.max_queue:
                    metrics.SHED.labels(model, "queue_full").inc()
                    return await send_error(send, 429, "too many requests in flight; retry shortly", "overloaded",
                                            {"Retry-After": "1"})
                self.waiting += 1
                metrics.WAITING.labels(model).inc()
                try:
                    await self._cond.wait_for(lambda: self.running < self.max_in_flight)
                finally:
                    self.waiting -= 1
                    metrics.WAITING.labels(model).dec()
            self.running += 1
        try:
            await self.app(scope, receive, send)
        finally:
            async with self._cond:
                self.running -= 1
                self._cond.notify(1)
