"""ASGI middleware for reliability and security, outermost first:

- RequestId: honours a sane `X-Request-ID` (or makes one), returns it, and puts it in the logs.
- Auth: with keys configured, every `/v1` request needs `Authorization: Bearer KEY`; checked from
  the headers alone, before the body is read and before admission, so a client without a key
  can hold neither a queue place nor a slot.
- BodyLimit: reads the whole body before anything else sees it: over `max_bytes` (declared or
  counted, chunked or not) is a 413, a body that takes longer than `timeout_s` to arrive a 408.
  Admission (`app/api/admission.py`) comes after it, so a slow body never holds a slot.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import hmac
import json
import re
import time
import uuid

from app.api.errors import error_body

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


async def send_error(send, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(status, message, None, code)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers") or ():
        if k == name:
            return v
    return None


class RequestId:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = (_header(scope, b"x-request-id") or b"").decode("latin-1")
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


def key_id(key: bytes) -> str:
    """A stable, non-reversible id of an API key (the first 12 hex digits of its sha256): what the
    trace store keeps to scope traces by key; never the key itself."""
    return hashlib.sha256(key).hexdigest()[:12]


def key_matches(keys: list[bytes], authorization: bytes | None) -> bool:
    """Whether an `Authorization` header carries one of `keys` as a bearer token. Every key is
    compared in constant time, whatever matches, so timing says nothing about which prefix was
    right. A missing header, another scheme or an empty token never matches."""
    scheme, _, given = (authorization or b"").partition(b" ")
    token = given.strip()
    if scheme.lower() != b"bearer" or not token:
        return False
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(token, key)
    return ok


class Auth:
    def __init__(self, app, keys: list[bytes], prefix: str = "/v1") -> None:
        self.app, self.keys, self.prefix = app, keys, prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self.keys or not _under(scope["path"], self.prefix):
            return await self.app(scope, receive, send)
        if not key_matches(self.keys, _header(scope, b"authorization")):
            # the body is never read: close the connection rather than wait for it
            return await send_error(send, 401, "missing or invalid API key: send 'Authorization: Bearer KEY'",
                                    "invalid_api_key", {"WWW-Authenticate": "Bearer", "Connection": "close"})
        # which key matched, as its id (request.state.key_id): the trace store scopes traces by it
        token = _header(scope, b"authorization").partition(b" ")[2].strip()
        scope.setdefault("state", {})["key_id"] = key_id(token)
        return await self.app(scope, receive, send)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class BodyLimit:
    """`state` (the app's): once it is `draining` a body still arriving gets 503 within half a
    second, and its `receiving` counts the requests still receiving theirs (the drain waits for them)."""

    def __init__(self, app, max_bytes: int, timeout_s: float = 10.0, state=None) -> None:
        self.app, self.max_bytes, self.timeout_s, self.state = app, max_bytes, timeout_s, state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await send_error(send, 413, f"request body is larger than {self.max_bytes} bytes", "body_too_large",
                                    {"Connection": "close"})
        self._count(1)
        try:
            body = await self._read(receive, send)
        finally:
            self._count(-1)
        if body is not None:
            await self.app(scope, body, send)

    async def _read(self, receive, send):
        """The body as a receive callable that replays it, or None once an error was sent."""
        chunks, size, until = [], 0, time.monotonic() + self.timeout_s
        while True:
            try:  # waits at most 0.5 s at a time, so that a drain starting meanwhile is seen
                message = await asyncio.wait_for(receive(), min(max(until - time.monotonic(), 0.001), 0.5))
            except asyncio.TimeoutError:
                if getattr(self.state, "draining", False):  # shutting down: a slow body is not waited for
                    await send_error(send, 503, "shutting down; retry shortly", "not_ready",
                                     {"Retry-After": "2", "Connection": "close"})
                    return None
                if time.monotonic() < until:
                    continue
                await send_error(send, 408, f"the request body did not arrive within {self.timeout_s:g} s",
                                 "body_timeout", {"Connection": "close"})
                return None
            if message["type"] == "http.disconnect":
                return None  # the client left before sending its body: nothing to answer
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await send_error(send, 413, f"request body is larger than {self.max_bytes} bytes",
                                 "body_too_large", {"Connection": "close"})
                return None
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)

    def _count(self, step: int) -> None:
        if self.state is not None:
            self.state.receiving = getattr(self.state, "receiving", 0) + step


def replay(messages: list[dict], receive):
    """A receive callable that gives `messages` first, in order, then what `receive` gives."""

    async def replayed():
        return messages.pop(0) if messages else await receive()

    return replayed
