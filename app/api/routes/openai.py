"""`POST /v1/chat/completions`: the loop behind the OpenAI chat API.

The last message (a user message) is the question; earlier messages are kept as context. RISE
options ride in the body's `rise` object (the official client's `extra_body`); `reasoning_effort`
picks the turns from RISE_REASONING_EFFORT_LEVELS when `rise.max_turns` is not given. The answer's
`content` is the final turn's text, the turns are its reasoning (`reasoning` and
`reasoning_content`, app/api/openai_render.py); `rise` in the response holds each choice's trace.
Fields rise-serve does not offer are accepted at their neutral values only
(app/api/protocol_openai.py).

With `n` > 1 the choices share the request's deadline and each ends on its own: one that finished
no turn by then comes back with empty `content`, `finish_reason` "length" (cut off, like a token
limit) and a trace with `stop_reason` "deadline" and no turns, beside the others' finished turns.
The request is a 504 only when no choice finished a turn.
"""

from __future__ import annotations

import asyncio
import logging
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app import metrics
from app.api.deps import EngineDep, SettingsDep, deadline_for
from app.api.errors import ApiError
from app.api.json_body import OffLoopJSONRoute
from app.api.openai_render import chunk_renderer, completion
from app.api.protocol_openai import ChatCompletionRequest
from app.api.protocol_refine import RefineOptions
from app.api.serving import (build_config, check_caps, check_fits, check_openai_request, check_question,
                              checker_and_oracle, effort_options, event_stream, keep_trace, pick_engine, record,
                              reserved, run_mapped, temperature_for, trace_wanted, until_disconnect)
from app.config import Settings
from app.refine.loop import RefineTimeout, refine
from app.refine.types import RefineResult
from app.traces.schema import new_id

log = logging.getLogger("rise.api")

router = APIRouter(tags=["openai"], route_class=OffLoopJSONRoute)  # large bodies decoded off the loop


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completion, refined over turns",
             responses={200: {"content": {"text/event-stream": {}}}, 400: {"description": "invalid request"},
                        404: {"description": "unknown model"}})
async def chat_completions(body: ChatCompletionRequest, settings: SettingsDep, engine: EngineDep, request: Request):
    engine = pick_engine(request, engine, body.model)  # the base model or a LoRA adapter
    model = engine.info.model_name
    check_openai_request(body, model)
    store = trace_wanted(request, body.store, default=False)  # OpenAI's default: not stored
    *history, last = body.messages
    if last.role != "user":
        raise ApiError(400, "the last message must come from the user", "messages")
    question = last.text()
    check_question(settings, question, "messages")
    if body.max_tokens is not None and body.max_completion_tokens is not None:
        raise ApiError(400, "give max_tokens or max_completion_tokens, not both", "max_completion_tokens")
    max_tokens = body.max_completion_tokens or body.max_tokens
    n = body.choices()
    check_caps(settings, max_turns=body.rise.max_turns, samples=body.rise.samples_per_turn, max_tokens=max_tokens,
               n=n, tokens_param="max_completion_tokens" if body.max_completion_tokens else "max_tokens",
               prefix="rise.")
    opts = rise_options(settings, body)
    temperature = temperature_for(settings, body.temperature, opts.samples_per_turn, n, "rise.")
    configs = [build_config(settings, opts, temperature=temperature, top_p=body.top_p or 1.0,
                            max_tokens=max_tokens, seed=None if body.seed is None else body.seed + 7919 * i,
                            stop=body.stops(), prefix="rise.", logprobs=bool(body.logprobs)) for i in range(n)]
    if body.user or body.safety_identifier:
        log.info("chat request for user=%s", body.user or body.safety_identifier,
                 extra={"fields": {"user": body.user, "safety_identifier": body.safety_identifier}})
    deadline = deadline_for(request, opts.timeout)
    state = request.app.state
    checker, oracle = await checker_and_oracle(state, opts, deadline, "rise.")
    context = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in history]
    await check_fits(engine, question, context, "messages")  # a 400 before a stream starts, too
    cid, created = new_id("chatcmpl"), int(time.time())  # the id of its stored trace too

    async def choice(i: int, cfg, on_event) -> RefineResult:
        try:
            return await refine(engine, question, checker, cfg, oracle=oracle, history=context, deadline=deadline,
                                on_event=None if on_event is None else _tagged(on_event, i), session=f"{cid}/{i}",
                                turn_retries=settings.turn_retries)
        except RefineTimeout:
            return RefineResult.unfinished("deadline", oracle is not None)

    async def run(on_event=None):
        results = await asyncio.gather(*[choice(i, cfg, on_event) for i, cfg in enumerate(configs)])
        finished = [r for r in results if r.turns]
        if not finished:
            raise RefineTimeout("the deadline passed before the first turn finished")
        for _ in range(len(results) - len(finished)):
            metrics.DEADLINES.labels(model).inc()
        record(model, finished, configs[0], question if settings.log_questions else None)
        if store:
            keep_trace(request, cid, "/v1/chat/completions", question, configs[0], results, opts.reference, context,
                       task=opts.task, model=model)
        return results

    if not body.stream:
        results = await until_disconnect(request, run_mapped(run(), "messages", model, state), model,
                                         "/v1/chat/completions")
        return completion(cid, created, model, results, settings.reasoning_field, bool(body.logprobs))
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    render = chunk_renderer(cid, created, model, include_usage, settings.reasoning_field, bool(body.logprobs),
                            configs[0].samples_per_turn)
    events = event_stream(run, render, "messages", model, "/v1/chat/completions", state)
    return StreamingResponse(reserved(request, cid, store, events),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def rise_options(settings: Settings, body: ChatCompletionRequest) -> RefineOptions:
    """The request's RISE options, with `reasoning_effort`'s rule filling what `rise` left unset
    (`rise.max_turns` wins over the effort's turns): app/api/serving.py `effort_options`."""
    return effort_options(settings, body.reasoning_effort, body.rise)


def _tagged(on_event, index: int):
    return lambda e: on_event({**e, "choice": index})
