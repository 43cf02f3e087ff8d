"""The remote engine: any OpenAI-compatible server (a vLLM fleet behind a router, SGLang,
llama.cpp, another rise-serve) through its `/v1/chat/completions`.

Pooled connections, a timeout on every call, retries with exponential backoff on connection
errors and 5xx only; readiness reflects whether the upstream answers. Several samples (n > 1) go
out as n concurrent requests with seeds seed+i, so each sample's token counts are exact and the
upstream's prefix cache serves the shared prompt.

    rise serve --engine openai --base-url http://127.0.0.1:8001/v1 --model-name rise-synth
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Sequence
from urllib.parse import urlparse

import httpx

from app.engines.base import (
    Completion,
    Conversation,
    DeltaCallback,
    EngineError,
    EngineInfo,
    PromptTooLongError,
    SamplingParams,
)

log = logging.getLogger(__name__)


class UpstreamUnavailable(EngineError):
    """The upstream cannot be reached or keeps failing."""

    status = 503
    code = "upstream_unavailable"


class UpstreamError(EngineError):
    """The upstream refused a request or answered something that is not a valid answer."""

    status = 502
    code = "upstream_error"


def check_base_url(url: str | None) -> str:
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8001/v1, not {url!r}")
    return url.rstrip("/")


class OpenAIEngine:
    def __init__(self, base_url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout_s: float = 120.0, connect_timeout_s: float = 5.0, max_retries: int = 3,
                 backoff_s: float = 0.25, max_connections: int = 256, max_context: int | None = None) -> None:
        self.base_url = check_base_url(base_url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=self.base_url, headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self._model = model
        self._info = EngineInfo(model_name=model or "upstream", max_context=max_context or 4096,
                                extra={"engine": "openai", "base_url": self.base_url})

    @property
    def info(self) -> EngineInfo:
        return self._info

    async def start(self) -> None:
        """Learn the upstream's model name and context length (when it tells them)."""
        data = await self._request("GET", "/models")
        models = data.get("data") or []
        if not models:
            raise UpstreamError(f"upstream {self.base_url} lists no models")
        entry = next((m for m in models if m.get("id") == self._model), None) if self._model else models[0]
        if entry is None:
            raise UpstreamError(f"upstream {self.base_url} does not serve {self._model!r}; it serves "
                              + ", ".join(str(m.get("id")) for m in models))
        self._model = entry["id"]
        self._info = EngineInfo(model_name=self._model, max_context=int(entry.get("max_model_len") or self._info.max_context),
                                extra=self._info.extra)

    async def generate(self, prompts: Sequence[Conversation], params: SamplingParams,
                       on_delta: DeltaCallback | None = None) -> list[list[Completion]]:
        tasks = [[self._one(list(p), params, None if params.seed is None else params.seed + j,
                            None if on_delta is None else (lambda t, i=i, j=j: on_delta(i, j, t)))
                  for j in range(params.n)] for i, p in enumerate(prompts)]
        flat = await asyncio.gather(*[t for row in tasks for t in row])
        return [flat[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    async def _one(self, messages: list[dict], params: SamplingParams, seed: int | None, emit) -> Completion:
        body = {"model": self._model or self._info.model_name, "messages": messages, "n": 1,
                "temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens}
        if seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        if emit is None:
            data = await self._request("POST", "/chat/completions", body)
            try:
                choice, usage = data["choices"][0], data["usage"]
                return Completion(choice["message"]["content"] or "", int(usage["prompt_tokens"]),
                                  int(usage["completion_tokens"]), _finish(choice.get("finish_reason")))
            except (KeyError, IndexError, TypeError, ValueError):
                raise UpstreamError(f"upstream {self.base_url} returned an invalid chat completion") from None
        return await self._stream(body, emit)

    async def _stream(self, body: dict, emit) -> Completion:
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        text, finish, usage = [], "stop", None
        async for chunk in self._with_retries(lambda: self._sse(body)):
            for c in chunk.get("choices") or []:
                piece = (c.get("delta") or {}).get("content") or ""
                if piece:
                    text.append(piece)
                    emit(piece)
                if c.get("finish_reason"):
                    finish = _finish(c["finish_reason"])
            usage = chunk.get("usage") or usage
        if not usage:
            raise UpstreamError(f"upstream {self.base_url} sent no usage in its stream")
        return Completion("".join(text), int(usage["prompt_tokens"]), int(usage["completion_tokens"]), finish)

    async def _sse(self, body: dict):
        async with self.client.stream("POST", "/chat/completions", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                self._raise_for(r)
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    yield json.loads(data)
                except json.JSONDecodeError:
                    raise UpstreamError(f"upstream {self.base_url} sent malformed stream data") from None

    async def _with_retries(self, make_stream):
        """Iterate a stream, retrying its start on connection errors and 5xx (not once data flowed)."""
        for attempt in range(self.max_retries + 1):
            started = False
            try:
                async for item in make_stream():
                    started = True
                    yield item
                return
            except (httpx.TransportError, _Retryable) as e:
                if started or attempt == self.max_retries:
                    raise UpstreamUnavailable(f"upstream {self.base_url} failed: {_describe(e)}") from None
                await asyncio.sleep(self._delay(attempt))

    async def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        for attempt in range(self.max_retries + 1):
            try:
                r = await self.client.request(method, path, json=body)
                if r.status_code >= 400:
                    self._raise_for(r)
                try:
                    return r.json()
                except ValueError:
                    raise UpstreamError(f"upstream {self.base_url} answered {path} with something that is not JSON") from None
            except (httpx.TransportError, _Retryable) as e:
                if attempt == self.max_retries:
                    raise UpstreamUnavailable(f"upstream {self.base_url} failed: {_describe(e)}") from None
                await asyncio.sleep(self._delay(attempt))
        raise AssertionError("unreachable")

    def _raise_for(self, r: httpx.Response) -> None:
        if r.status_code >= 500:
            raise _Retryable(f"HTTP {r.status_code}")
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = r.text[:200]
        if r.status_code == 400 and ("context" in message.lower() or "too long" in message.lower()
                                     or "maximum" in message.lower()):
            raise PromptTooLongError(f"upstream: {message}")
        raise UpstreamError(f"upstream {self.base_url} refused the request (HTTP {r.status_code}): {message}")

    def _delay(self, attempt: int) -> float:
        return self.backoff_s * (2 ** attempt) * (0.5 + random.random())

    async def health(self) -> bool:
        try:
            r = await self.client.get("/models", timeout=3.0)
            return r.status_code == 200
        except httpx.HTTPError:
            return False

    async def aclose(self) -> None:
        await self.client.aclose()


class _Retryable(Exception):
    pass


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "abort" if reason == "abort" else "stop"


def _describe(e: BaseException) -> str:
    return str(e) or type(e).__name__
