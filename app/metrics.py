"""Prometheus collectors, in one place: what self-refinement looks like to an operator.

Labels are bounded: `model_name`, `mode` (oracle | self), `route` (the route template), `status`,
`reason`, `transition`, `turn` (clamped to TURN_LABEL_CAP), and a verifier's `name` (a built-in
check or an operator's endpoint) with its `outcome`. No ids, questions, users or verifier parameters.
Served at `GET /metrics`.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app.refine.types import RefineResult

TURN_LABEL_CAP = 10
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter("rise_requests", "HTTP requests by route and status", ["model_name", "route", "status"])
IN_FLIGHT = Gauge("rise_requests_in_flight", "HTTP requests being served", ["model_name", "route"])
REQUEST_LATENCY = Histogram("rise_request_duration_seconds", "End-to-end refinement latency",
                            ["model_name", "mode"], buckets=LATENCY_BUCKETS)
TURN_LATENCY = Histogram("rise_turn_duration_seconds", "Latency of one turn", ["model_name", "mode"],
                         buckets=LATENCY_BUCKETS)
TTFT = Histogram("rise_time_to_first_token_seconds", "Time to the first token of a turn",
                 ["model_name", "mode", "turn"], buckets=LATENCY_BUCKETS)
TURNS = Histogram("rise_turns_per_request", "Turns a refinement used", ["model_name", "mode"],
                  buckets=tuple(range(1, TURN_LABEL_CAP + 1)))
STOPS = Counter("rise_stop_reasons", "Why refinements stopped", ["model_name", "mode", "reason"])
REFINEMENTS = Counter("rise_refinements", "Refinements completed", ["model_name", "mode"])
ANSWER_CHANGES = Counter("rise_answer_changes", "Turns whose answer differs from the previous turn's",
                         ["model_name", "mode"])
TRANSITIONS = Counter("rise_oracle_transitions", "Oracle verdict changes between consecutive turns",
                      ["model_name", "transition"])
PASS_AT_TURN = Counter("rise_oracle_pass_at_turn", "Oracle refinements allowed at least k turns and solved at or "
                       "before turn k (divide by rise_oracle_refinements_at_turn for accuracy at turn k)",
                       ["model_name", "turn"])
AT_TURN = Counter("rise_oracle_refinements_at_turn", "Oracle refinements allowed at least k turns (max_turns >= k), "
                  "solved or not: the denominator of accuracy at turn k", ["model_name", "turn"])
VOTE_AGREEMENT = Histogram("rise_vote_agreement_ratio", "Share of answers agreeing with the final answer (no oracle)",
                           ["model_name"], buckets=(0.2, 0.4, 0.5, 0.6, 0.8, 0.99, 1.0))
PROMPT_TOKENS = Counter("rise_prompt_tokens", "Prompt tokens over all turns", ["model_name"])
COMPLETION_TOKENS = Counter("rise_completion_tokens", "Completion tokens over all turns", ["model_name"])
BATCH_SIZE = Histogram("rise_engine_batch_size", "Sequences per engine batch", ["model_name"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
ENGINE_ERRORS = Counter("rise_engine_errors", "Requests failed by the engine", ["model_name"])
TURN_RETRIES = Counter("rise_turn_retries", "Turns run again after the engine broke off mid-turn (a reset connection, "
                       "a cut stream, 5xx), before any of the turn reached the client", ["model_name"])
CANCELLED = Counter("rise_requests_cancelled", "Requests whose client went away before the answer", ["model_name", "route"])
SHED = Counter("rise_requests_shed", "Requests refused by admission control (429 queue_full, 503 not_ready)",
               ["model_name", "reason"])
WAITING = Gauge("rise_requests_waiting", "Refinements queued for a slot", ["model_name"])
RUNNING = Gauge("rise_requests_running", "Refinements holding a slot (at most RISE_MAX_IN_FLIGHT)", ["model_name"])
DEADLINES = Counter("rise_deadline_exceeded", "Refinements whose deadline passed before their first turn finished (504)",
                    ["model_name"])
ANSWER_CHECK_TIMEOUTS = Counter("rise_answer_check_timeouts", "Answer checks (math-verify) that ran out of time and "
                                "counted as not equivalent: capped (one parse or comparison), killed (a worker call "
                                "past its caps), busy (no free worker in time), skipped (the request's budget spent)",
                                ["reason"])
TRACE_DROP_REASONS = ("queue_full", "locked", "full", "readonly", "unavailable", "error", "shutdown")
TRACES_DROPPED = Counter("rise_traces_dropped", "Traces not stored (the refinement was still answered): "
                         + ", ".join(TRACE_DROP_REASONS), ["reason"])
TRACES_WRITTEN = Counter("rise_traces_written", "Traces stored")
VERIFIER_CALLS = Counter("rise_verifier_calls", "Verifier calls by outcome: correct, incorrect, or unchecked as "
                         "timeout, error (failed, non-2xx) or invalid (a reply not {correct: bool, feedback?: str})",
                         ["name", "outcome"])
VERIFIER_LATENCY = Histogram("rise_verifier_duration_seconds", "Latency of one verifier call", ["name"],
                             buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
BUILD_INFO = Gauge("rise_build_info", "Build and model information", ["version", "model_name", "engine"])
MODEL_INFO = Gauge("rise_model_info", "1 for the model version served now (a fingerprint of its directory; a reload "
                   "replaces the series: app/api/reload.py)", ["model_name", "version"])
READY = Gauge("rise_ready", "1 when the last /ready answered 200, 0 when it answered 503 (set by each probe)",
              ["model_name"])
for _reason in TRACE_DROP_REASONS:
    TRACES_DROPPED.labels(_reason)


def set_ready(model: str, ready: bool) -> None:
    """What the last /ready said; only the current model name keeps a series (the name may change
    when the model has loaded)."""
    READY.clear()
    READY.labels(model).set(1 if ready else 0)


def init_series(model: str) -> None:
    """Export at 0, from the moment the model is known, the labelled counters that panels and alerts
    take a rate or an increase of: a series born at its first event would hide that event from them."""
    for k in range(1, TURN_LABEL_CAP + 1):
        PASS_AT_TURN.labels(model, turn_label(k))
        AT_TURN.labels(model, turn_label(k))
    for reason in ("queue_full", "not_ready"):
        SHED.labels(model, reason)
    for mode in ("oracle", "self"):
        REFINEMENTS.labels(model, mode)
    ENGINE_ERRORS.labels(model)
    TURN_RETRIES.labels(model)


def turn_label(k: int) -> str:
    return str(k) if k < TURN_LABEL_CAP else f"{TURN_LABEL_CAP}+"


def observe_result(model: str, result: RefineResult, max_turns: int, equivalent: Callable[[str, str], bool]) -> None:
    """Record one finished refinement."""
    mode = "oracle" if result.oracle else "self"
    REFINEMENTS.labels(model, mode).inc()
    TURNS.labels(model, mode).observe(len(result.turns))
    STOPS.labels(model, mode, result.stop_reason).inc()
    REQUEST_LATENCY.labels(model, mode).observe(sum(t.latency_s for t in result.turns))
    PROMPT_TOKENS.labels(model).inc(result.prompt_tokens)
    COMPLETION_TOKENS.labels(model).inc(result.completion_tokens)
    for t in result.turns:
        TURN_LATENCY.labels(model, mode).observe(t.latency_s)
        if t.ttft_s is not None:
            TTFT.labels(model, mode, turn_label(t.index)).observe(t.ttft_s)
    for prev, cur in zip(result.turns, result.turns[1:]):
        if not _same(prev.answer, cur.answer, equivalent):
            ANSWER_CHANGES.labels(model, mode).inc()
        if result.oracle and None not in (prev.correct, cur.correct) and prev.correct != cur.correct:
            TRANSITIONS.labels(model, "wrong_to_right" if cur.correct else "right_to_wrong").inc()
    if result.oracle:  # accuracy at turn k counts the requests whose max_turns >= k, whenever they stopped
        first = next((t.index for t in result.turns if t.correct), None)
        for k in range(1, min(max_turns, TURN_LABEL_CAP) + 1):
            AT_TURN.labels(model, turn_label(k)).inc()
            if first is not None and k >= first:
                PASS_AT_TURN.labels(model, turn_label(k)).inc()
    else:
        answers = [s.answer for t in result.turns for s in t.samples]
        if answers and result.final_answer is not None:
            agree = sum(1 for a in answers if a is not None and equivalent(a, result.final_answer))
            VOTE_AGREEMENT.labels(model).observe(agree / len(answers))


def _same(a: str | None, b: str | None, equivalent) -> bool:
    if a is None or b is None:
        return a is b
    return equivalent(a, b)


class EngineCollector:
    """Reads the engine's queue depth at scrape time."""

    def __init__(self, get_engine: Callable[[], object]) -> None:
        self.get_engine = get_engine

    def collect(self):
        g = GaugeMetricFamily("rise_engine_queue_depth", "Sequences waiting for an engine batch", labels=["model_name"])
        engine = self.get_engine()
        if engine is not None and hasattr(engine, "pending"):
            g.add_metric([engine.info.model_name], engine.pending())
        yield g
        cache = getattr(engine, "prefix_cache", None)
        if cache is None:
            return
        name = [engine.info.model_name]
        prompt = CounterMetricFamily("rise_engine_prompt_tokens", "Prompt tokens the embedded engine was asked to prefill",
                                     labels=["model_name"])
        prompt.add_metric(name, cache.stats.prompt_tokens)
        hit = CounterMetricFamily("rise_engine_prefix_cache_hit_tokens", "Prompt tokens served from the prefix cache "
                                  "instead of being prefilled", labels=["model_name"])
        hit.add_metric(name, cache.stats.hit_tokens)
        size = GaugeMetricFamily("rise_engine_prefix_cache_bytes", "Memory held by the prefix cache", labels=["model_name"])
        size.add_metric(name, cache.bytes)
        yield from (prompt, hit, size)
        if (spec := getattr(engine, "spec", None)) is not None:
            yield from spec_families(name[0], spec.stats.snapshot())


def spec_families(model: str, by_turn: dict) -> list[CounterMetricFamily]:
    """The embedded engine's speculation counters (app/engines/speculative.py) by refinement turn
    (clamped as `turn_label`; `none`: engine calls outside a refinement)."""
    labels = ["model_name", "turn"]
    draft = CounterMetricFamily("rise_spec_draft_tokens", "Tokens drafted by prompt lookup and checked in a verify "
                                "pass, by refinement turn", labels=labels)
    accepted = CounterMetricFamily("rise_spec_accepted_tokens", "Drafted tokens the model accepted (the acceptance "
                                   "rate is this over rise_spec_draft_tokens)", labels=labels)
    rows = CounterMetricFamily("rise_spec_verify_rows", "Sequences' drafts checked in a verify pass (accepted tokens "
                               "over this: the mean accepted length)", labels=labels)
    sums: dict[str, list[int]] = {}
    for turn, s in by_turn.items():
        total = sums.setdefault(turn_label(turn) if turn else "none", [0, 0, 0])
        total[0] += s.drafted
        total[1] += s.accepted
        total[2] += s.verified
    for label, (d, a, v) in sums.items():
        draft.add_metric([model, label], d)
        accepted.add_metric([model, label], a)
        rows.add_metric([model, label], v)
    return [draft, accepted, rows]


_collector: EngineCollector | None = None


def watch_engine(get_engine: Callable[[], object]) -> None:
    """Point the queue-depth collector at the current app's engine (one per process)."""
    global _collector
    if _collector is None:
        _collector = EngineCollector(get_engine)
        REGISTRY.register(_collector)
    else:
        _collector.get_engine = get_engine


def exposition() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware: requests by route template and status, and requests in flight (until the
    last byte of a streamed body is sent)."""

    def __init__(self, app, model_name: Callable[[], str]) -> None:
        self.app, self.model_name = app, model_name

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == "/metrics":
            return await self.app(scope, receive, send)
        status = {"code": 500}
        model = self.model_name()
        route = _route_of(scope)
        IN_FLIGHT.labels(model, route).inc()

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            IN_FLIGHT.labels(model, route).dec()
            REQUESTS.labels(model, _route_of(scope), str(status["code"])).inc()


def _route_of(scope) -> str:
    route = scope.get("route")
    if route is not None and getattr(route, "path", None):
        return route.path
    path = scope.get("path", "")
    known = ("/v1/refine", "/v1/chat/completions", "/v1/responses", "/v1/models", "/health", "/ready", "/metrics",
             "/docs", "/openapi.json")
    return path if path in known else "other"
