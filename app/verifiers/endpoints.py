"""The operator's verifier endpoints (`RISE_VERIFIERS`): a JSON object, or the path of a file holding
one, mapping a name to {"url", "timeout_s", "headers"}. Only these URLs are ever called: a request
names a verifier, it never brings a URL. A bad entry stops `rise serve` (status 2) with a message
naming it; header values (they may hold keys) are never printed.

    RISE_VERIFIERS='{"unit-tests": {"url": "http://127.0.0.1:9100/verify", "timeout_s": 5}}' rise serve
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

BUILTIN_NAMES = ("numeric", "regex", "json_schema", "contains")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HOST = re.compile(r"[A-Za-z0-9._:-]+")  # a name (an IDN as xn--), an IPv4 or an IPv6 address
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP header name
_RESERVED_HEADERS = {"content-length", "content-type", "host", "transfer-encoding", "connection"}


class VerifierEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="http(s) URL that receives {question, answer, text, turn} as a JSON POST")
    timeout_s: float = Field(5.0, gt=0, le=300, description="time cap of one call (past it: the turn is unchecked)")
    headers: dict[str, str] = Field(default_factory=dict, repr=False,
                                    description="sent with every call (e.g. Authorization); never printed")

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        try:
            url = httpx.URL(v)
        except Exception:  # noqa: BLE001 - httpx's own message may quote the URL
            raise ValueError("url is not a valid URL") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("url must be an http:// or https:// URL with a host")
        if not _HOST.fullmatch(url.raw_host.decode("ascii", "replace")):  # a space (taken as %20): every call fails
            raise ValueError("url's host is not a host name or an IP address")
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError("url's port is not between 1 and 65535")
        if url.userinfo:  # httpx would send them as Basic auth over the configured Authorization header
            raise ValueError("url must not hold credentials (user:password@): put them in headers")
        return v

    @field_validator("headers")
    @classmethod
    def _header_text(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name[:64]!r} is not a valid HTTP header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by rise-serve and cannot be configured")
            if not all(32 <= ord(c) <= 126 or c == "\t" for c in value):  # the value is never printed
                raise ValueError(f"header {name!r} has a value with line breaks, control or non-ASCII characters")
        return v


def parse_verifiers(value):
    """RISE_VERIFIERS as given (a JSON object, or a file path) -> {name: entry}; names checked here,
    entries by VerifierEndpoint (pydantic names the entry: `verifiers.NAME.timeout_s: ...`)."""
    if isinstance(value, (str, Path)):
        text = str(value).strip()
        if not text:
            return {}
        if not text.startswith("{"):
            try:
                text = Path(text).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"RISE_VERIFIERS is neither a JSON object nor a readable file "
                                 f"({type(e).__name__}: {getattr(e, 'strerror', None) or e})") from None
        try:
            value = json.loads(text)
        except ValueError as e:
            raise ValueError(f"RISE_VERIFIERS is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise ValueError("RISE_VERIFIERS must be a JSON object mapping names to {\"url\", \"timeout_s\", \"headers\"}")
    for name in value:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ValueError(f"RISE_VERIFIERS entry {str(name)[:64]!r}: a name is 1-64 letters, digits, '_', '.' or "
                             "'-', starting with a letter or digit")
        if name in BUILTIN_NAMES:
            raise ValueError(f"RISE_VERIFIERS entry {name!r}: the name of a built-in check; choose another")
    return value
