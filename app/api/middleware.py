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
            return await send_error(send, 401, "missing or invalid API key: send 'Authorization: Bearer KEY'",
                                    "invalid_api_key", {"WWW-Authenticate": "Bearer"})
        return await self.app(scope, receive, send)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class BodyLimit:
    def __init__(self, app, max_bytes: int, timeout_s: float = 10.0) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await send_error(send, 413, f"request body is larger than {self.max_bytes} bytes", "body_too_large")
        chunks, size, until = [], 0, time.monotonic() + self.timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(until - time.monotonic(), 0.001))
            except asyncio.TimeoutError:
                return await send_error(send, 408, f"the request body did not arrive within {self.timeout_s:g} s",
                                        "body_timeout", {"Connection": "close"})
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body: nothing to answer
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return await send_error(send, 413, f"request body is larger than {self.max_bytes} bytes",
                                        "body_too_large", {"Connection": "close"})
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body: list[dict] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replay():
            return body.pop() if body else await receive()

        await self.app(scope, replay, send)
