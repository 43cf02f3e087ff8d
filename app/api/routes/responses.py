"""The OpenAI Responses API: `POST /v1/responses` (plain or streamed), `GET` and `DELETE
/v1/responses/{id}` for stored responses.

The last input message (a user message) is the question; earlier ones, `instructions` (a system
message first) and, with `previous_response_id`, the stored conversation it continues (its context,
question and answer; not its instructions) are the context, as chat's history. RISE options ride in
`rise`, as chat's; `reasoning.effort` picks the turns as chat's `reasoning_effort` does.
`max_output_tokens` is the budget over all turns (`rise.max_total_tokens`): each turn still has
RISE_DEFAULT_MAX_TOKENS at most. The answer's shape: app/api/responses_render.py.

A response is stored in the trace store only with `store: true` (as chat's completions: OpenAI's
default is to store, rise-serve's is not to); its id is its trace's (`GET /v1/refinements/{id}`
shows the same trace). Reads and deletes follow `/v1/refinements`: the key that made a response
alone sees it (404 for any other), and traces off is a 409.
"""

from __future__ import annotations

import json
import logging
from contextlib import aclosing

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.api.deps import EngineDep, SettingsDep, deadline_for
from app.api.errors import ApiError
from app.api.json_body import OffLoopJSONRoute
from app.api.protocol_responses import ResponseRequest
from app.api.responses_render import StreamRenderer, live_logprobs, now, output_of, render_stored, response_object
from app.api.routes import refinements
from app.api.routes.refinements import KeyIdDep, TracesDep, _shown
from app.api.serving import (build_config, check_caps, check_fits, check_openai_request, check_question,
                              checker_and_oracle, effort_options, event_stream, keep_trace, pick_engine, record,
                              reserved, run_mapped, temperature_for, trace_wanted, until_disconnect)
from app.refine.loop import refine
from app.traces.schema import new_id, valid_id

log = logging.getLogger("rise.api")

router = APIRouter(tags=["responses"], route_class=OffLoopJSONRoute)  # large bodies decoded off the loop
ROUTE = "/v1/responses"
NOT_FOUND = "no stored response with id '{}'"


@router.post(ROUTE, summary="OpenAI Responses API: an answer refined over turns, each turn a reasoning item",
             responses={200: {"content": {"text/event-stream": {}}}, 400: {"description": "invalid request"},
                        404: {"description": "unknown model"}})
async def create_response(body: ResponseRequest, settings: SettingsDep, engine: EngineDep, request: Request):
    engine = pick_engine(request, engine, body.model)  # the base model or a LoRA adapter
    model = engine.info.model_name
    check_openai_request(body, model)
    store = trace_wanted(request, body.store, default=False)  # as chat: OpenAI's API stores, rise-serve does not
    *earlier, last = body.messages()
    if last.role != "user":
        raise ApiError(400, "the last input message must come from the user", "input")
    question = last.text()
    check_question(settings, question, "input")
    check_caps(settings, max_turns=body.rise.max_turns, samples=body.rise.samples_per_turn, max_tokens=None,
               prefix="rise.")
    opts = budgeted(effort_options(settings, body.effort(), body.rise), body.max_output_tokens)
    temperature = temperature_for(settings, body.temperature, opts.samples_per_turn, prefix="rise.")
    top_p = 1.0 if body.top_p is None else body.top_p
    config = build_config(settings, opts, temperature=temperature, top_p=top_p, max_tokens=None, seed=None, stop=(),
                          prefix="rise.", logprobs=body.logprobs())
    if body.user or body.safety_identifier:
        log.info("responses request for user=%s", body.user or body.safety_identifier,
                 extra={"fields": {"user": body.user, "safety_identifier": body.safety_identifier}})
    previous = await conversation_of(request, body.previous_response_id) if body.previous_response_id else []
    deadline = deadline_for(request, opts.timeout)
    state = request.app.state
    checker, oracle = await checker_and_oracle(state, opts, deadline, "rise.")
    context = ([{"role": "system", "content": body.instructions}] if body.instructions else []) + previous + \
        [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in earlier]
    await check_fits(engine, question, context, "input")  # a 400 before a stream starts, too
    rid = new_id("resp")  # the id of its stored trace too
    shown = echo(body, store, temperature, top_p)

    async def run(on_event=None):
        result = await refine(engine, question, checker, config, oracle=oracle, history=context, deadline=deadline,
                              on_event=on_event, session=rid, turn_retries=settings.turn_retries)
        shown["completed_at"] = now()
        record(model, [result], config, question if settings.log_questions else None)
        if store:
            keep_trace(request, rid, ROUTE, question, config, [result], opts.reference, context, dict(shown),
                       task=opts.task, model=model)
        return result

    if not body.stream:
        result = await until_disconnect(request, run_mapped(run(), "input", model, state), model, ROUTE)
        whole = result.to_dict()
        output = output_of(rid.removeprefix("resp_"), whole, bool(body.summary()),
                           live_logprobs(result, body.logprobs()))
        return response_object(rid, model, shown, result=whole, output=output)
    renderer = StreamRenderer(rid, model, shown, config.samples_per_turn, body.logprobs())
    events = event_stream(run, renderer, "input", model, ROUTE, state)
    return StreamingResponse(reserved(request, rid, store, _stream(renderer, events)), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get(ROUTE + "/{response_id}", summary="A stored response",
            responses={404: {"description": "unknown id"}, 409: {"description": "traces are off"}})
async def get_response(response_id: str, traces: TracesDep, key_id: KeyIdDep) -> dict:
    row = await _stored(traces, response_id, key_id)
    if row is None:
        raise ApiError(404, NOT_FOUND.format(_shown(response_id)), "id", "not_found")
    return render_stored(row, json.loads(row["body"]))


@router.delete(ROUTE + "/{response_id}", summary="Delete a stored response",
               responses={404: {"description": "unknown id"}, 409: {"description": "traces are off"}})
async def delete_response(response_id: str, traces: TracesDep, key_id: KeyIdDep) -> dict:
    """As `DELETE /v1/refinements/{id}` (which it calls), a pending write included."""
    try:
        if not _is_response(response_id):
            raise ApiError(404, "not a response id", "id", "not_found")
        await refinements.delete_refinement(response_id, traces, key_id)
    except ApiError as e:
        if e.status != 404:
            raise
        raise ApiError(404, NOT_FOUND.format(_shown(response_id)), "id", "not_found") from None
    return {"id": response_id, "object": "response.deleted", "deleted": True}


def budgeted(opts, max_output_tokens: int | None):
    """The RISE options with `max_output_tokens` as their budget over all turns."""
    if max_output_tokens is None:
        return opts
    if opts.max_total_tokens is not None:
        raise ApiError(400, "give max_output_tokens or rise.max_total_tokens, not both", "max_output_tokens")
    if max_output_tokens < opts.samples_per_turn:
        raise ApiError(400, "max_output_tokens must leave each sample of a turn at least one token "
                            f"(rise.samples_per_turn is {opts.samples_per_turn})", "max_output_tokens")
    return opts.model_copy(update={"max_total_tokens": max_output_tokens})


def echo(body: ResponseRequest, store: bool, temperature: float, top_p: float) -> dict:
    """The request's own fields, as the response (and a stored response) shows them."""
    return {"created_at": now(), "completed_at": None, "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens, "metadata": body.metadata or {},
            "previous_response_id": body.previous_response_id,
            "reasoning": {"effort": body.effort(), "summary": body.summary()}, "store": store,
            "temperature": temperature, "top_p": top_p, "user": body.user,
            "parallel_tool_calls": True if body.parallel_tool_calls is None else body.parallel_tool_calls,
            "tool_choice": body.tool_choice if isinstance(body.tool_choice, str) else "auto"}


async def conversation_of(request: Request, response_id: str) -> list[dict]:
    """The conversation a stored response ends: its context (less its instructions), its question
    and its answer. Traces off, or an id this key cannot see, is a 400 naming the field."""
    traces = getattr(request.app.state, "traces", None)
    if traces is None:
        raise ApiError(400, "previous_response_id continues a stored response, but this server keeps no responses "
                            "(RISE_TRACES_URL is unset); send the conversation as input instead",
                       "previous_response_id", "unsupported_parameter")
    row = await _stored(traces, response_id, getattr(request.state, "key_id", None))
    if row is None:
        raise ApiError(400, NOT_FOUND.format(_shown(response_id)) + " (stored with store: true, by this key)",
                       "previous_response_id", "previous_response_not_found")
    body = json.loads(row["body"])
    history = body.get("history") or []
    if (body.get("response") or {}).get("instructions"):
        history = history[1:]  # instructions are not carried over (OpenAI's rule)
    return [*history, {"role": "user", "content": row["question"]},
            {"role": "assistant", "content": body["choices"][0]["final_text"]}]


def _is_response(response_id: str) -> bool:
    return response_id.startswith("resp_") and valid_id(response_id)


async def _stored(traces, response_id: str, key_id: str | None) -> dict | None:
    if not _is_response(response_id):
        return None
    return await refinements._on_store(traces, response_id, key_id, lambda s: s.get(response_id, key_id))


async def _stream(renderer: StreamRenderer, events):
    """`response.created` and `response.in_progress` at once, then the loop's events; the client
    leaving closes `events`, which cancels the refinement."""
    for chunk in renderer.start():
        yield chunk
    async with aclosing(events) as it:
        async for chunk in it:
            yield chunk
