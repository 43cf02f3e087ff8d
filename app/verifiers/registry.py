"""The verifiers a server offers: the built-in checks and the operator's endpoints. `oracle(spec)`
turns a request's `verifier` object ({"name": ..., **params}) into an Oracle, or raises
VerifierError naming the bad field; every call of it is counted in
`rise_verifier_calls_total{name,outcome}` (correct, incorrect, timeout, error, invalid) and timed in
`rise_verifier_duration_seconds{name}`. The name is the only label: parameters, answers and
feedback never reach a label or a log line. The server checks a request's verifier with
`checked_oracle`: in the verifiers' one worker thread (patterns.CHECK_THREAD), within
ARRIVAL_TIMEOUT_S and one `patterns.Budget` (the check stops itself at the budget's time), so that
no request's parameters stall the event loop.

    .venv/bin/python -m pytest -q tests/refine/test_oracles_builtin.py tests/api/test_verifiers.py
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx
from pydantic import ValidationError

from app import metrics
from app.refine.oracles import UNCHECKED, Oracle, Verdict
from app.verifiers import patterns
from app.verifiers.builtin import BUILTINS
from app.verifiers.endpoints import VerifierEndpoint
from app.verifiers.errors import CheckTimeout, Unchecked, VerifierError
from app.verifiers.remote import RemoteVerifier

log = logging.getLogger("rise.verifiers")
MAX_PARAMS_CHARS = 16_000
ARRIVAL_TIMEOUT_S = 2.0  # a request's verifier check (its patterns: CHECK_TIMEOUT_S); past it, the check stops itself
_ENDPOINT_URLS: set[str] = set()  # every configured endpoint's URL, as httpx writes it


class _NoEndpointCalls(logging.Filter):
    """httpx logs each request's URL at INFO; an endpoint's URL may hold a key (`user:password@`,
    `?key=`), and each call is already counted and timed in metrics: those lines are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) > 1 and str(args[1]) in _ENDPOINT_URLS)


logging.getLogger("httpx").addFilter(_NoEndpointCalls())


class Verifiers:
    def __init__(self, endpoints: dict[str, VerifierEndpoint] | None = None) -> None:
        self.endpoints = dict(endpoints or {})
        self._client: httpx.AsyncClient | None = None
        _ENDPOINT_URLS.update(str(httpx.URL(e.url)) for e in self.endpoints.values())

    def names(self) -> list[str]:
        return [*BUILTINS, *sorted(self.endpoints)]

    async def checked_oracle(self, name: str, params: dict, deadline=None) -> Oracle:
        """`oracle`, checked in a worker thread within ARRIVAL_TIMEOUT_S (VerifierError past it; a
        check still waiting for a thread then is a 503: the server is busy)."""
        if name in self.endpoints:
            _ = self.client  # made here, in the serving event loop, not in the worker thread
        budget = patterns.Budget(start=False)
        work = patterns.in_check_thread(self.oracle, name, params, deadline, budget)
        try:
            return await asyncio.wait_for(work, ARRIVAL_TIMEOUT_S)
        except asyncio.TimeoutError:
            started = budget.stop()  # a running check stops at its next pattern or keyword; a waiting one at once
            if not started:
                raise VerifierError("name", "the server is busy checking other requests' verifiers; retry shortly",
                                    status=503) from None
            raise VerifierError(_MAIN_PARAM.get(name, "name"), f"checking the verifier's parameters took longer "
                                f"than {ARRIVAL_TIMEOUT_S:g} s; send fewer or simpler patterns") from None

    def oracle(self, name: str, params: dict, deadline=None, budget: patterns.Budget | None = None) -> Oracle:
        """The oracle for `name` with `params` (checked now, its patterns within `budget`), its calls
        within `deadline`."""
        if name in BUILTINS:
            budget = budget or patterns.Budget()
            budget.start()
            try:
                inner = BUILTINS[name].model_validate(params, context={"budget": budget})
            except ValidationError as e:
                field, message = _first_problem(e)
                raise VerifierError(field, message) from None
        elif name in self.endpoints:
            for key, value in params.items():  # what the call will send must be JSON: no NaN or Infinity
                try:
                    json.dumps(value, allow_nan=False)
                except ValueError:
                    raise VerifierError(key, "NaN and Infinity are not JSON; the verifier could not be sent them") \
                        from None
            if len(json.dumps(params)) > MAX_PARAMS_CHARS:
                raise VerifierError("name", f"the parameters of {name!r} are longer than {MAX_PARAMS_CHARS} "
                                            "characters as JSON")
            inner = RemoteVerifier(self.endpoints[name], self.client, params, deadline)
        else:
            raise VerifierError("name", f"unknown verifier {name!r}; this server offers: {', '.join(self.names())}")
        return Measured(name, inner, deadline)

    @property
    def client(self) -> httpx.AsyncClient:
        """One pooled client for every endpoint, made in the serving event loop on first use. It keeps
        no cookies: a call carries nothing from another call, another request or another key."""
        if self._client is None:
            no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))  # every cookie refused
            self._client = httpx.AsyncClient(follow_redirects=False, cookies=no_cookies,
                                             limits=httpx.Limits(max_connections=256, max_keepalive_connections=64))
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class Measured:
    """An oracle whose calls are counted and timed under `name`; a call with no verdict (or none
    before the request's `deadline`: a built-in check waits for a worker thread) is unchecked."""

    def __init__(self, name: str, inner: Oracle, deadline=None) -> None:
        self.name, self.inner, self.deadline = name, inner, deadline

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        start = time.monotonic()
        try:
            verdict = await self._within_deadline(self.inner.judge(question, answer, text, turn))
            outcome = "correct" if verdict.correct else "incorrect"
        except Unchecked as e:
            verdict, outcome = UNCHECKED, e.outcome
            log.warning("verifier %s gave no verdict (%s): %s", self.name, outcome, e)
        except Exception as e:  # noqa: BLE001 - a verifier's fault never fails the request
            verdict, outcome = UNCHECKED, "error"
            log.error("verifier %s failed: %s", self.name, type(e).__name__)
        metrics.VERIFIER_CALLS.labels(self.name, outcome).inc()
        metrics.VERIFIER_LATENCY.labels(self.name).observe(time.monotonic() - start)
        return verdict

    async def _within_deadline(self, work):
        if self.deadline is None:
            return await work
        try:
            return await self.deadline.run(work)
        except asyncio.TimeoutError:
            raise CheckTimeout("the request's deadline passed before the check ended") from None


_MAIN_PARAM = {"regex": "pattern", "json_schema": "schema"}  # what makes a check slow to prepare


def _first_problem(e: ValidationError) -> tuple[str, str]:
    """The first field a pydantic error names (by its JSON name), and what is wrong with it; never the value."""
    err = e.errors(include_input=False, include_url=False)[0]
    field = ".".join(str(x) for x in err.get("loc", ())) or "name"
    if err.get("type") == "extra_forbidden":
        return field, "not a parameter of this check"
    if err.get("type") == "missing":
        return field, "required by this check"
    return field, err.get("msg", "invalid").removeprefix("Value error, ")
