"""The remote engine: any OpenAI-compatible server (a vLLM fleet behind a router, SGLang,
llama.cpp, another rise-serve) through its `/v1/chat/completions`.

Pooled connections; a read timeout of the request timeout (the loop's deadline ends a call
sooner). A generation is sent again only when the upstream cannot have started it: a connection
that was never made, or an answer of 5xx or 429 (honouring `Retry-After` when it fits the call's
time). A read error or timeout after sending is never retried. Replies are validated
(`app/engines/openai_protocol.py`); errors inside a stream are read like error responses. A call
that broke off after sending (a reset connection, a cut stream, 5xx once the retries are spent) is
`transient`: the loop runs that turn again (`RISE_TURN_RETRIES`). Several samples (n > 1) go out
as n concurrent requests with seeds seed+i, so each sample's token counts are exact and the
upstream's prefix cache serves the shared prompt; one that fails cancels the others. Inside a
refinement every call carries a session key header (`RISE_UPSTREAM_SESSION_HEADER`, one key per
sample, the same at every turn) that a fleet's router hashes to keep a sample's turns on the
replica whose prefix cache holds the turns before (docs/engines.md). A rise-serve upstream is
asked for one plain turn per call (`"rise": {"max_turns": 1}`), so refinement does not nest.

    rise serve --engine openai --base-url http://127.0.0.1:8001/v1 --model-name rise-synth
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from typing import Sequence
from urllib.parse import urlparse, urlunparse

import httpx
from pydantic import ValidationError

from app.engines.base import (
    Completion,
    Conversation,
    DeltaCallback,
    EngineError,
    EngineInfo,
    PromptTooLongError,
    SamplingParams,
    call_deadline,
    session_key,
)
from app.engines.adapters import current_adapter
from app.engines.openai_protocol import (
    RISE_SERVE,
    ChatCompletion,
    Chunk,
    ModelList,
    StreamAssembler,
    error_message,
    finish,
    is_context_error,
    retry_after_s,
    stream_error,
)
from app.engines.stops import cut_at_stop

log = logging.getLogger(__name__)


class UpstreamUnavailable(EngineError):
    """The upstream cannot be reached, broke off, or keeps failing (an engine fault)."""

    status = 503
    code = "upstream_unavailable"


class UpstreamBrokeOff(UpstreamUnavailable):
    """The upstream failed after the request went out (reset, a cut stream, 5xx after the engine's
    own retries): the turn may be run again, with the same seed (`EngineError.transient`)."""

    transient = True


class UpstreamError(EngineError):
    """The upstream refused a request or answered something that is not a valid answer."""

    status = 502
    code = "upstream_error"


class UpstreamRejected(UpstreamError):
    """The upstream refused this request for what it asked (a 400, 413 or 422 that is not about the
    context): still a 502, but the request's doing, not a fault of the engine."""

    fault = False


class UpstreamBusy(EngineError):
    """The upstream asked to be called later (429, or 503 with Retry-After) and waiting does not fit
    the call's time: passed on to the client with its Retry-After. Not an engine fault."""

    fault = False

    def __init__(self, message: str, status: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = "rate_limit_exceeded" if status == 429 else "upstream_unavailable"
        self.retry_after = max(1, math.ceil(retry_after)) if retry_after is not None else None


class _Retry(Exception):
    """An answer that proves the upstream did not generate: send again after `wait` seconds (None:
    the usual backoff), or give up with `error`."""

    def __init__(self, error: EngineError, wait: float | None = None) -> None:
        super().__init__(str(error))
        self.error, self.wait = error, wait


# Connection errors before the request went out: sending again cannot duplicate a generation.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def check_base_url(url: str | None) -> str:
    parsed = urlparse(url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--base-url must be an http(s) URL such as http://127.0.0.1:8001/v1, not {url!r}")
    return url.rstrip("/")


def shown_url(url: str) -> str:
    """`url` without what may be a secret: its user and password, query and fragment."""
    parsed = urlparse(url)
    return urlunparse((parsed.scheme, parsed.netloc.rpartition("@")[2], parsed.path, "", "", ""))


class OpenAIEngine:
    def __init__(self, base_url: str, *, api_key: str | None = None, model: str | None = None,
                 timeout_s: float = 300.0, connect_timeout_s: float = 5.0, max_retries: int = 3,
                 backoff_s: float = 0.25, max_connections: int = 256, max_context: int | None = None,
                 session_header: str | None = "X-Session-ID") -> None:
        url = check_base_url(base_url)
        self.base_url = shown_url(url)  # what messages (a client's error) and /ready show; the client uses `url`
        self.session_header = session_header or None  # "" or None: no session key is sent
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(
            base_url=url, headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections))
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s
        self.rise_upstream = False  # the upstream is rise-serve: ask it for one plain turn per call
        self._model = model
        self._info = EngineInfo(model_name=model or "upstream", max_context=max_context or 4096,
                                extra={"engine": "openai", "base_url": self.base_url})
        self._known = False  # the upstream's model list was read
        self._start_lock = asyncio.Lock()

    @property
    def info(self) -> EngineInfo:
        return self._info

    async def start(self) -> None:
        """Learn the upstream's model name, context length and whether it is rise-serve."""
        r = await self._send("GET", "/models", None, time.monotonic() + self.timeout_s)
        self._adopt(_json(r, self.base_url, "/models"))

    def _adopt(self, data: object) -> None:
        try:
            models = ModelList.model_validate(data).data
        except ValidationError:
            raise UpstreamError(f"upstream {self.base_url} answered /models with an invalid model list") from None
        if not models:
            raise UpstreamError(f"upstream {self.base_url} lists no models")
        entry = next((m for m in models if m.id == self._model), None) if self._model else models[0]
        if entry is None:
            raise UpstreamError(f"upstream {self.base_url} does not serve {self._model!r}; it serves "
                                + ", ".join(m.id for m in models))
        self._model, self.rise_upstream, self._known = entry.id, entry.owned_by == RISE_SERVE, True
        self._info = EngineInfo(model_name=entry.id, max_context=entry.max_model_len or self._info.max_context,
                                extra=self._info.extra)

    async def _ensure_known(self) -> None:
        """Read the model list once (start-up may have found the upstream down)."""
        if not self._known:
            async with self._start_lock:
                if not self._known:
                    await self.start()

    async def generate(self, prompts: Sequence[Conversation], params: SamplingParams,
                       on_delta: DeltaCallback | None = None) -> list[list[Completion]]:
        await self._ensure_known()
        tasks = [asyncio.ensure_future(self._one(list(p), params, None if params.seed is None else params.seed + j,
                                                 None if on_delta is None else (lambda t, i=i, j=j: on_delta(i, j, t)),
                                                 self._session(j)))
                 for i, p in enumerate(prompts) for j in range(params.n)]
        try:
            flat = await asyncio.gather(*tasks)
        finally:  # one sample failed (or the call was cancelled): the others' generations stop too
            for t in tasks:
                t.cancel()
        return [flat[i * params.n:(i + 1) * params.n] for i in range(len(prompts))]

    def _session(self, sample: int) -> dict[str, str] | None:
        """The session key header of sample `sample` of the running refinement (app/engines/base.py)."""
        key = session_key(sample) if self.session_header else None
        return None if key is None else {self.session_header: key}

    def _body(self, messages: list[dict], params: SamplingParams, seed: int | None) -> dict:
        # a LoRA adapter's call names the adapter: the upstream serves it (app/engines/adapters.py)
        body = {"model": current_adapter() or self._model or self._info.model_name, "messages": messages, "n": 1,
                "temperature": params.temperature, "top_p": params.top_p, "max_tokens": params.max_tokens}
        if seed is not None:
            body["seed"] = seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs and not self.rise_upstream:  # rise-serve gives no logprobs: its vote falls back
            body["logprobs"] = True  # an upstream that sends none: token_logprobs stays None
        if self.rise_upstream:
            body["rise"] = {"max_turns": 1}  # one plain turn: this server runs the refinement
        return body

    async def _one(self, messages: list[dict], params: SamplingParams, seed: int | None, emit,
                   headers: dict[str, str] | None = None) -> Completion:
        body, until = self._body(messages, params, seed), time.monotonic() + self.timeout_s
        at = call_deadline()
        if at is not None:  # a Retry-After wait must fit the caller's deadline too
            until = min(until, at)
        if emit is None:
            r = await self._send("POST", "/chat/completions", body, until, headers=headers)
            data = _json(r, self.base_url, "/chat/completions")
            self._check_error(stream_error(data), "answered")
            try:
                reply = ChatCompletion.model_validate(data)
            except ValidationError:
                raise UpstreamError(f"upstream {self.base_url} returned an invalid chat completion") from None
            choice = reply.choices[0]
            logprobs = choice.logprobs.values() if choice.logprobs is not None else []
            tokens = choice.logprobs.tokens() if choice.logprobs is not None else []
            return _cut(Completion(choice.message.content or "", reply.usage.prompt_tokens,
                                   reply.usage.completion_tokens, finish(choice.finish_reason), logprobs or None,
                                   tokens or None), params.stop)
        return _cut(await self._stream({**body, "stream": True, "stream_options": {"include_usage": True}}, emit, until,
                                       headers), params.stop)

    async def _stream(self, body: dict, emit, until: float, headers: dict[str, str] | None = None) -> Completion:
        r = await self._send("POST", "/chat/completions", body, until, stream=True, headers=headers)
        out = StreamAssembler(emit, self.rise_upstream)
        try:
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                out.feed(self._chunk(data))
        except httpx.HTTPError as e:  # the upstream broke off mid-answer: never sent again here (the loop may)
            raise UpstreamBrokeOff(f"upstream {self.base_url} broke off its stream: {_describe(e)}") from None
        finally:
            await r.aclose()
        completion = out.completion()
        if completion is None:
            raise UpstreamError(f"upstream {self.base_url} sent no usage in its stream")
        return completion

    def _chunk(self, data: str) -> Chunk:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            raise UpstreamError(f"upstream {self.base_url} sent malformed stream data") from None
        self._check_error(stream_error(payload), "reported in its stream")
        try:
            return Chunk.model_validate(payload)
        except ValidationError:
            raise UpstreamError(f"upstream {self.base_url} sent an invalid stream chunk") from None

    def _check_error(self, info, how: str) -> None:
        """Raise what an error object inside a 200 answer means: a context-length refusal is the
        client's PromptTooLongError, another client error is not an engine fault, the rest are."""
        if info is None:
            return
        if is_context_error(info.message, info.code):
            raise PromptTooLongError(f"upstream: {info.message}")
        client_side = info.type == "invalid_request_error" or (isinstance(info.code, int) and 400 <= info.code < 500)
        cls = UpstreamRejected if client_side else UpstreamError
        raise cls(f"upstream {self.base_url} {how} an error: {info.message or info.type or 'no message'}")

    async def _send(self, method: str, path: str, body: dict | None, until: float,
                    stream: bool = False, headers: dict[str, str] | None = None) -> httpx.Response:
        """A response with a status below 400 (a streamed one still open). Sent again only when
        the upstream cannot have started generating, and only while the wait fits before `until`."""
        for attempt in range(self.max_retries + 1):
            try:
                request = self.client.build_request(method, path, json=body, headers=headers)
                r = await self._send_resending_once(request, stream)
                if r.status_code < 400:
                    return r
                await r.aread()
                await r.aclose()
                self._refuse(r)
            except _NOT_SENT as e:
                retry = _Retry(UpstreamUnavailable(f"upstream {self.base_url} cannot be reached: {_describe(e)}"))
            except httpx.TimeoutException as e:
                raise UpstreamUnavailable(f"upstream {self.base_url} did not answer in time: {_describe(e)}") from None
            except httpx.HTTPError as e:  # sent, then reset or cut: it may have started generating
                raise UpstreamBrokeOff(f"upstream {self.base_url} failed: {_describe(e)}") from None
            except _Retry as e:
                retry = e
            wait = self._delay(attempt) if retry.wait is None else retry.wait
            if attempt == self.max_retries or time.monotonic() + wait >= until:
                raise retry.error
            log.info("upstream %s: %s; again in %.2f s", self.base_url, retry.error, wait)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def _send_resending_once(self, request: httpx.Request, stream: bool) -> httpx.Response:
        """Send `request`. Closed with no answer at all on a kept-alive connection (one this call did
        not open), it is sent once more at once: that connection was one the upstream, or a load
        balancer before it, had dropped. On a connection of its own, such a close is the call's failure."""
        opened: list[str] = []

        async def trace(name: str, info: dict) -> None:
            if name.startswith("connection.connect_tcp"):
                opened.append(name)

        request.extensions = {**request.extensions, "trace": trace}
        try:
            return await self.client.send(request, stream=stream)
        except httpx.RemoteProtocolError as e:
            if opened or "without sending a response" not in str(e):
                raise
            log.info("upstream %s closed a kept-alive connection with no answer; sending again", shown_url(self.base_url))
            return await self.client.send(request, stream=stream)

    def _refuse(self, r: httpx.Response) -> None:
        """Raise what an error status means (_Retry for the ones that may be sent again)."""
        try:
            body = r.json()
        except ValueError:
            body = None
        message, code = error_message(body, r.text)
        said = f"upstream {self.base_url} answered HTTP {r.status_code}: {message}"
        wait = retry_after_s(r.headers.get("retry-after"))
        if r.status_code == 429 or (r.status_code == 503 and wait is not None):
            raise _Retry(UpstreamBusy(said, r.status_code, wait if wait is not None else self.backoff_s), wait)
        if r.status_code >= 500:
            raise _Retry(UpstreamBrokeOff(said))
        if r.status_code in (400, 413, 422):
            if is_context_error(message, code):
                raise PromptTooLongError(f"upstream: {message}")
            raise UpstreamRejected(said)
        raise UpstreamError(said)  # 401, 403, 404...: how this engine is set up

    def _delay(self, attempt: int) -> float:
        return self.backoff_s * (2 ** attempt) * (0.5 + random.random())

    async def health(self) -> bool:
        try:
            r = await self.client.get("/models", timeout=3.0)
            if r.status_code != 200:
                return False
            if not self._known:  # the upstream is back after a start without it
                self._adopt(r.json())
            return True
        except (httpx.HTTPError, ValueError, EngineError):
            return False

    async def aclose(self) -> None:
        await self.client.aclose()


def _json(r: httpx.Response, base_url: str, path: str) -> object:
    try:
        return r.json()
    except ValueError:
        raise UpstreamError(f"upstream {base_url} answered {path} with something that is not JSON") from None


def _describe(e: BaseException) -> str:
    return str(e) or type(e).__name__


def _cut(c: Completion, stops) -> Completion:
    """An upstream may match stop strings in list order (vLLM does): cut at the earliest one."""
    if stops:
        c.text, found = cut_at_stop(c.text, stops)
        if found:
            c.finish_reason = "stop"
    return c
