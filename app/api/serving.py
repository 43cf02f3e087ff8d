"""What the routes share: request knobs to a `RefineConfig` (with the configured caps), running the
loop with engine errors mapped to API errors, and Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing
from typing import AsyncIterator, Awaitable, Callable

from app import metrics
from app.answers.checker import get_checker
from app.api.errors import ApiError, error_body
from app.config import Settings
from app.engines.base import EngineError, PromptTooLongError, SamplingParams
from app.refine.checks import PooledChecks
from app.refine.feedback import DEFAULT_FEEDBACK
from app.refine.loop import Oracle, RefineTimeout, build_prompt, reference_oracle
from app.refine.temperature import resolve_temperature
from app.refine.types import RefineConfig
from app.verifiers.errors import VerifierError
from app.verifiers.registry import Verifiers
from app.traces.record import build_row

log = logging.getLogger("rise.api")


def check_caps(settings: Settings, *, max_turns: int | None, samples: int, max_tokens: int | None,
               n: int = 1, tokens_param: str = "max_tokens", prefix: str = "") -> None:
    """`prefix` is where the RISE options sit in the body (`rise.` in the chat API)."""
    samples_param = f"{prefix}samples_per_turn"
    if max_turns is not None and max_turns > settings.max_turns_cap:
        raise ApiError(400, f"{prefix}max_turns must be at most {settings.max_turns_cap}", f"{prefix}max_turns")
    if samples > settings.max_samples_cap:
        raise ApiError(400, f"{samples_param} must be at most {settings.max_samples_cap}", samples_param)
    if n > settings.max_samples_cap:
        raise ApiError(400, f"n must be at most {settings.max_samples_cap}", "n")
    if max_tokens is not None and max_tokens > settings.max_tokens_cap:
        raise ApiError(400, f"{tokens_param} must be at most {settings.max_tokens_cap}", tokens_param)


def temperature_for(settings: Settings, given: float | None, samples: int, choices: int = 1, prefix: str = "") -> float:
    """The request's temperature by the one rule (app/refine/temperature.py): left out, greedy for one
    draw per prompt and RISE_SAMPLED_TEMPERATURE for several; an explicit 0 with several draws is a
    400 naming `temperature` (`prefix`: where samples_per_turn sits, `rise.` in chat)."""
    try:
        return resolve_temperature(given, samples, choices, settings.sampled_temperature,
                                   samples_name=f"{prefix}samples_per_turn")
    except ValueError as e:
        raise ApiError(400, str(e), "temperature") from None


def build_config(settings: Settings, opts, *, temperature: float, top_p: float, max_tokens: int | None,
                 seed: int | None, stop: tuple[str, ...], prefix: str = "", logprobs: bool = False) -> RefineConfig:
    """The loop's configuration for a request; an inconsistent one is a 400 naming the field (RISE
    options under `prefix`)."""
    try:
        sampling = SamplingParams(temperature=temperature, top_p=top_p, seed=seed, stop=stop, logprobs=logprobs,
                                  max_tokens=max_tokens or settings.default_max_tokens,
                                  speculative=getattr(opts, "speculative", None))
        return RefineConfig(max_turns=opts.max_turns or settings.default_turns, samples_per_turn=opts.samples_per_turn,
                            window=opts.window, aggregation=opts.aggregation, tie_break=opts.tie_break, sampling=sampling,
                            early_stop=opts.early_stop, agree_turns=opts.agree_turns,
                            max_total_tokens=opts.max_total_tokens, confidence=settings.confidence_form,
                            feedback=opts.feedback or DEFAULT_FEEDBACK,
                            confidence_threshold=settings.confidence_threshold)
    except ValueError as e:  # the message starts with the field it is about
        field = str(e).split(" ", 1)[0]
        if not field.isidentifier():
            raise ApiError(400, str(e)) from None
        where = f"{prefix}{field}" if field in RefineConfig.__dataclass_fields__ else field
        raise ApiError(400, f"{prefix}{e}" if where != field else str(e), where) from None


async def checker_and_oracle(state, opts, deadline, prefix: str = "") -> tuple[PooledChecks, Oracle | None]:
    """The request's answer checks (math-verify in capped worker processes, within `deadline`) and
    its oracle: its reference, or its verifier (checked now, in a worker thread under a time cap: a
    bad one is a 400 naming the field)."""
    settings: Settings = state.settings
    checks = PooledChecks(get_checker(opts.task or settings.task), state.check_pool, deadline)
    if opts.early_stop != "none" and (opts.reference or opts.verifier is not None):
        raise ApiError(400, f"{prefix}early_stop applies only without an oracle: with a {prefix}reference or "
                            f"{prefix}verifier the loop stops at the first correct turn (leave early_stop out)",
                       f"{prefix}early_stop")
    if opts.verifier is None:
        return checks, (reference_oracle(checks, opts.reference) if opts.reference else None)
    if opts.reference:
        raise ApiError(400, f"give {prefix}reference or {prefix}verifier, not both", f"{prefix}verifier")
    if getattr(state, "verifiers", None) is None:  # one per app: its client pools the endpoints' connections
        state.verifiers = Verifiers(settings.verifiers)
    try:
        return checks, await state.verifiers.checked_oracle(opts.verifier.name, opts.verifier.params(), deadline)
    except VerifierError as e:
        where = f"{prefix}verifier.{e.field}"
        raise ApiError(e.status, f"{where}: {e.message}", where,
                       headers={"Retry-After": "1"} if e.status == 503 else None) from None


def effort_options(settings: Settings, effort: str | None, opts):
    """The request's RISE options, with a reasoning-effort level's rule (RISE_REASONING_EFFORT_LEVELS)
    filling what `rise` left unset: chat's `reasoning_effort`, the Responses API's `reasoning.effort`
    (`rise.max_turns` wins over the level's turns)."""
    if effort is None:
        return opts
    rule = settings.effort(effort)
    given = {k for k in opts.model_fields_set if getattr(opts, k) is not None}  # null: the default
    update = {k: v for k, v in rule.model_dump(exclude_none=True).items() if k not in given}
    if opts.reference or opts.verifier is not None:
        update.pop("early_stop", None)  # an oracle stops at the first correct turn: the level's rule has no place
    out = opts.model_copy(update=update)
    if "early_stop" not in given and out.early_stop == "agree" and (out.max_turns or 1) < out.agree_turns:
        out = out.model_copy(update={"early_stop": "none"})  # too few turns for the level's rule to apply
    return out


def check_openai_request(body, model: str) -> None:
    """What chat and Responses check first: the served model's name (404 otherwise) and fields
    rise-serve does not offer (`body.unsupported()`: a 400 naming the field)."""
    if body.model != model:
        raise ApiError(404, f"The model '{body.model}' does not exist; this server serves '{model}'", "model",
                       "model_not_found")
    if refused := body.unsupported():
        field, message = refused
        raise ApiError(400, message, field, "unsupported_parameter")


def pick_engine(request, engine, name: str | None):
    """The engine a request's `model` names: the served model's (also when it names none), or one of
    its LoRA adapters' (RISE_LORA); any other name is a 404 in OpenAI's shape."""
    if name is None or name == engine.info.model_name:
        return engine
    adapters = getattr(request.state, "adapters", None)  # those of the engine the request holds (a reload)
    adapters = (getattr(request.app.state, "adapters", None) if adapters is None else adapters) or {}
    if name in adapters:
        return adapters[name]
    served = ", ".join(f"'{m}'" for m in [engine.info.model_name, *adapters])
    raise ApiError(404, f"The model '{name}' does not exist; this server serves {served}", "model", "model_not_found")


def check_question(settings: Settings, question: str, param: str) -> None:
    if not question.strip():
        raise ApiError(400, f"{param} must not be empty", param)
    if len(question) > settings.max_question_chars:
        raise ApiError(400, f"{param} is longer than {settings.max_question_chars} characters", param)


async def check_fits(engine, question: str, history: list[dict], param: str) -> None:
    """A 400 (`context_length_exceeded`) before any work, streamed or not, when the first turn's
    prompt does not fit the model's context with room for one new token. Counted with the engine's
    own chat template (off the event loop); an engine without one (an upstream) is asked by trying."""
    encode = getattr(engine, "encode", None)
    if encode is None:
        return
    tokens = len(await asyncio.to_thread(encode, build_prompt(question, [], RefineConfig(), history)))
    limit = engine.info.max_context
    if tokens >= limit:
        what = "the question has" if param == "question" else "the conversation has"
        raise ApiError(400, f"{what} {tokens} tokens in the model's chat template; the model's context is {limit} "
                            "tokens, and a turn needs room for at least one new token", param,
                       "context_length_exceeded")


async def run_mapped(coro: Awaitable, param: str = "question", model: str = "", state=None):
    """Await the loop; engine failures become API errors (and count as engine errors; enough of
    them in a row flip readiness until the engine succeeds again)."""
    try:
        result = await coro
    except PromptTooLongError as e:
        raise ApiError(400, str(e), param, "context_length_exceeded") from None
    except RefineTimeout as e:
        if getattr(state, "draining", False):  # the shutdown grace ended it, not the client's deadline
            raise ApiError(503, "the server is shutting down and no turn finished; retry elsewhere", None,
                           "not_ready", {"Retry-After": "2"}) from None
        metrics.DEADLINES.labels(model).inc()
        raise ApiError(504, str(e), "timeout", "timeout") from None
    except EngineError as e:
        if e.fault:  # not a client's mistake nor an upstream's "later, please"
            metrics.ENGINE_ERRORS.labels(model).inc()
            if state is not None:
                state.engine_failures = getattr(state, "engine_failures", 0) + 1
        retry_after = getattr(e, "retry_after", None) or (5 if e.status == 503 else None)
        raise ApiError(e.status, f"engine error: {e}", code=e.code,
                       headers={"Retry-After": str(retry_after)} if retry_after else None) from None
    except ValueError as e:
        raise ApiError(400, str(e), param) from None
    if state is not None:
        state.engine_failures = 0
    return result


async def until_disconnect(request, coro: Awaitable, model: str, route: str):
    """Await `coro`, cancelling it (and the engine work under it) if the client goes away. The body
    is read by now, so the next ASGI message is `http.disconnect`: one waiting task per request
    instead of polling (starlette's `is_disconnected` costs a cancel scope per poll)."""
    task = asyncio.ensure_future(coro)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        metrics.CANCELLED.labels(model, route).inc()
        raise ApiError(499, "client closed the request", code="client_closed")
    finally:
        for t in (task, gone):
            if not t.done():
                t.cancel()


async def _disconnected(request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def record(model: str, results, config: RefineConfig, question: str | None = None) -> None:
    """Metrics and a log line for finished refinements (the question only when asked to log it)."""
    for r in results:
        metrics.observe_result(model, r, config.max_turns, r.same_answer)
        fields = {"model": model, "mode": "oracle" if r.oracle else "self", "turns": len(r.turns),
                  "stop_reason": r.stop_reason, "latency_s": round(sum(t.latency_s for t in r.turns), 4),
                  "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens}
        if question is not None:
            fields["question"] = question
        log.info("refined %s", " ".join(f"{k}={v}" for k, v in fields.items() if k != "question"),
                 extra={"fields": fields})


def trace_wanted(request, store: bool | None, default: bool) -> bool:
    """Whether to keep the request's refinement in the trace store: its `store` field, else the
    route's `default` (the chat API: false, as OpenAI; the native API: true), and never when traces
    are off. `store: true` with traces off is a 400: the client asked for what cannot happen."""
    traces_on = getattr(request.app.state, "traces", None) is not None
    if store and not traces_on:
        raise ApiError(400, "'store': true asks to keep this refinement, but this server keeps no traces "
                            "(RISE_TRACES_URL is unset); leave store out or set it to false", "store",
                       "unsupported_parameter")
    return traces_on and (default if store is None else store)


def keep_trace(request, trace_id: str, route: str, question: str, config: RefineConfig, results,
               reference: str | None, history: list[dict] | None = None, response: dict | None = None,
               task: str | None = None, model: str | None = None) -> None:
    """Hand a finished refinement to the trace writer when traces are on (app/traces/writer.py):
    never waits and never fails the request; the reference goes only where RISE_TRACES_KEEP_REFERENCES
    says so (`response`: a stored Responses API response's own fields; `task`: the request's, by
    default RISE_TASK: what `rise train rise --from-traces` scores the trace with; `model`: the served
    name, a LoRA adapter's when the request chose one)."""
    state = request.app.state
    writer = getattr(state, "traces", None)
    if writer is None:
        return
    try:
        info = state.engine.info
        writer.submit(build_row(trace_id, route=route, model=model or info.model_name, engine=info.extra.get("engine", "unknown"),
                                question=question, config=config, results=list(results), reference=reference,
                                key_id=getattr(request.state, "key_id", None), history=history,
                                keep_reference=state.settings.traces_keep_references, response=response,
                                task=task or state.settings.task))
    except Exception as e:  # noqa: BLE001 - a trace is never worth a refinement
        metrics.TRACES_DROPPED.labels("error").inc()
        log.error("trace not kept: %s", type(e).__name__)


def sse(data: dict | str, event: str | None = None) -> str:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


async def reserved(request, trace_id: str, store: bool, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
    """A stream whose first chunk tells the id of the trace its refinement will leave (`store`):
    that id is pending in the trace writer while it runs, so that a DELETE meanwhile wins over the
    write (and a read waits for it), as for a trace already handed over; released if none comes."""
    writer = getattr(request.app.state, "traces", None) if store else None
    if writer is not None:
        writer.reserve(trace_id, getattr(request.state, "key_id", None))
    try:
        async with aclosing(chunks) as it:
            async for chunk in it:
                yield chunk
    finally:
        if writer is not None:
            writer.release(trace_id)


async def event_stream(run: Callable[[Callable[[dict], None]], Awaitable], render: Callable[[dict], list[str]],
                       param: str = "question", model: str = "", route: str = "", state=None) -> AsyncIterator[str]:
    """Run `run(on_event)` as a task and yield `render(event)` for each event as it happens; the
    loop's return value arrives as {"type": "result", "result": ...}, a failure as {"type": "error"}.
    A client that goes away cancels the task (and with it the engine's work)."""
    queue: asyncio.Queue[dict] = asyncio.Queue()
    task = asyncio.create_task(run_mapped(run(queue.put_nowait), param, model, state))
    task.add_done_callback(lambda t: queue.put_nowait({"type": "_done"}))
    try:
        while True:
            event = await queue.get()
            if event["type"] == "_done":
                break
            for chunk in render(event):
                yield chunk
        try:
            result = task.result()
        except ApiError as e:
            for chunk in render({"type": "error", "error": error_body(e.status, e.message, e.param, e.code)}):
                yield chunk
            return
        except Exception as e:  # noqa: BLE001
            log.error("stream failed: %s", type(e).__name__, exc_info=e)
            for chunk in render({"type": "error", "error": error_body(500, "internal error while streaming")}):
                yield chunk
            return
        for chunk in render({"type": "result", "result": result}):
            yield chunk
    finally:
        if not task.done():  # the client went away: stop the turns still to come
            task.cancel()
            metrics.CANCELLED.labels(model, route).inc()
