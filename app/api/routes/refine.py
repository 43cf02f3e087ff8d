"""`POST /v1/refine`: the native API, with the whole per-turn trace (JSON, or SSE with `stream`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app.api.deps import EngineDep, SettingsDep, deadline_for
from app.api.json_body import OffLoopJSONRoute
from app.api.protocol_refine import RefineRequest, RefineResponse
from app.api.serving import check_fits, pick_engine
from app.api.serving import (build_config, check_caps, check_question, checker_and_oracle, event_stream, keep_trace,
                              record, run_mapped, sse, temperature_for, trace_wanted, until_disconnect)
from app.refine.loop import refine
from app.traces.schema import new_id

router = APIRouter(tags=["refine"], route_class=OffLoopJSONRoute)  # large bodies decoded off the loop

STREAM_DOC = """With `"stream": true` the answer is `text/event-stream`: `turn_start` {turn, feedback}
once a turn runs (`feedback`: what the model was told after the previous turn, null on turn 1),
`delta` {turn, sample, text} as tokens arrive, `turn_end` {turn, answer, correct, chosen_sample,
latency_s, confidence, answers} (`answers`: every sample's), then `result` (the same object as the JSON answer) or `error`,
and finally `data: [DONE]`. A question too long for the model's context is a 400 before the stream
starts; a later turn that would not fit is never announced (the result's `stop_reason` is
`context_length`); a turn the deadline cuts short has no `turn_end`."""


@router.post("/v1/refine", response_model=RefineResponse, summary="Refine an answer over several turns",
             description="Answer, receive feedback, answer again for up to `max_turns` turns. With `reference` "
                         "(oracle) the loop stops at the first correct turn; without it every turn runs and the "
                         "final answer is the majority vote over turns.\n\n" + STREAM_DOC,
             responses={200: {"content": {"text/event-stream": {}}}, 400: {"description": "invalid request"}})
async def refine_route(body: RefineRequest, settings: SettingsDep, engine: EngineDep, request: Request):
    check_question(settings, body.question, "question")
    check_caps(settings, max_turns=body.max_turns, samples=body.samples_per_turn, max_tokens=body.max_tokens)
    store = trace_wanted(request, body.store, default=True)
    engine = pick_engine(request, engine, body.model)  # the base model (also when none is named) or a LoRA adapter
    model = engine.info.model_name
    temperature = temperature_for(settings, body.temperature, body.samples_per_turn)
    config = build_config(settings, body, temperature=temperature, top_p=body.top_p,
                          max_tokens=body.max_tokens, seed=body.seed, stop=tuple(body.stop or ()))
    deadline = deadline_for(request, body.timeout)
    state = request.app.state
    checker, oracle = await checker_and_oracle(state, body, deadline)
    await check_fits(engine, body.question, [], "question")  # a 400 before a stream starts, too
    rid = new_id("rr")  # 128 random bits: also the id of its stored trace

    async def run(on_event=None):
        result = await refine(engine, body.question, checker, config, oracle=oracle, on_event=on_event,
                              deadline=deadline, session=rid, turn_retries=settings.turn_retries)
        record(model, [result], config, body.question if settings.log_questions else None)
        if store:
            keep_trace(request, rid, "/v1/refine", body.question, config, [result], body.reference, task=body.task,
                       model=model)
        return result

    if not body.stream:
        result = await until_disconnect(request, run_mapped(run(), model=model, state=state), model, "/v1/refine")
        return RefineResponse(id=rid, model=model, **result.to_dict())

    def render(event: dict) -> list[str]:
        if event["type"] == "result":
            full = RefineResponse(id=rid, model=model, **event["result"].to_dict())
            return [sse(full.model_dump(), "result"), sse("[DONE]")]
        if event["type"] == "error":
            return [sse(event["error"], "error"), sse("[DONE]")]
        return [sse({k: v for k, v in event.items() if k != "type"}, event["type"])]

    return StreamingResponse(event_stream(run, render, model=model, route="/v1/refine", state=state), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

