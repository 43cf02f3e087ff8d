"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}; never a traceback."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("rise.api")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
         422: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 502: "upstream_error",
         503: "service_unavailable", 504: "timeout_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


class _AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error that quotes the client's text (even a lone surrogate)
    is always encodable."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(status: int, message: str, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return _AsciiJSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")  # what pydantic puts before a validator's sentence


def own_words(message: str) -> str:
    """A validator's sentence as it wrote it, without pydantic's "Value error, " (or "Assertion
    failed, ") before it: every 4xx message reads as rise-serve's own."""
    for prefix in PYDANTIC_PREFIXES:
        message = message.removeprefix(prefix)
    return message


def describe_validation(errors: list[dict]) -> tuple[str, str | None]:
    """One readable message naming the offending field(s), and the first field as `param`."""
    parts, param = [], None
    for e in errors[:5]:
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        field = ".".join(loc) or None
        param = param or field
        if e.get("type") == "extra_forbidden":
            parts.append(f"field '{field}' is not supported")
        elif e.get("type") == "json_invalid":
            parts.append(f"malformed JSON: {e.get('ctx', {}).get('error', e.get('msg'))}")
            param = None
        elif field:
            parts.append(f"{field}: {own_words(str(e.get('msg')))}")
        else:
            parts.append(own_words(str(e.get("msg"))))
    return "; ".join(parts) or "invalid request", param


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_req: Request, exc: ApiError):
        return error_response(exc.status, exc.message, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError):
        # each error carries its `input`, which may be the whole body (a conversation of 1,000 messages):
        # left out, it costs nothing to copy (20-40 ms on the event loop otherwise)
        errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
        ctype = _req.headers.get("content-type", "").split(";")[0].strip()
        if ctype and "json" not in ctype.lower() and any(tuple(e.get("loc", ())) == ("body",) for e in errors):
            return error_response(400, f"the body must be JSON, sent with 'Content-Type: application/json' "
                                       f"(it came as {ctype[:100]!r})")
        message, param = describe_validation(json.loads(json.dumps(errors, default=str)))
        return error_response(400, message, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unhandled(req: Request, exc: Exception):
        log.error("unhandled error on %s: %s", req.url.path, type(exc).__name__, exc_info=exc)
        return error_response(500, "internal error while serving the request", code="internal_error")
