"""`POST /v1/chat/completions`: the loop behind the OpenAI chat API.

The last message (a user message) is the question; earlier messages are kept as context. RISE
options ride in the body's `rise` object (the official client's `extra_body`). The answer's
`content` is the final turn's text; `rise` in the response holds each choice's trace. Streaming
sends the turns as `reasoning_content` deltas and the final answer as `content`.

With `n` > 1 the choices share the request's deadline and each ends on its own: one that finished
no turn by then comes back with empty `content`, `finish_reason` "length" (cut off, like a token
limit) and a trace with `stop_reason` "deadline" and no turns, beside the others' finished turns.
The request is a 504 only when no choice finished a turn.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from app import metrics
from app.api.deps import EngineDep, SettingsDep, deadline_for
from app.api.errors import ApiError
from app.api.protocol_openai import ChatCompletionRequest
from app.api.serving import (build_config, check_caps, check_question, checker_and_oracle, event_stream, record,
                              run_mapped, sse, until_disconnect)
from app.refine.loop import RefineTimeout, refine
from app.refine.types import RefineResult

router = APIRouter(tags=["openai"])


@router.post("/v1/chat/completions", summary="OpenAI-compatible chat completion, refined over turns",
             responses={200: {"content": {"text/event-stream": {}}}, 400: {"description": "invalid request"},
                        404: {"description": "unknown model"}})
async def chat_completions(body: ChatCompletionRequest, settings: SettingsDep, engine: EngineDep, request: Request):
    model = engine.info.model_name
    if body.model != model:
        raise ApiError(404, f"The model '{body.model}' does not exist; this server serves '{model}'", "model",
                       "model_not_found")
    *history, last = body.messages
    if last.role != "user":
        raise ApiError(400, "the last message must come from the user", "messages")
    question = last.text()
    check_question(settings, question, "messages")
    if body.max_tokens is not None and body.max_completion_tokens is not None:
        raise ApiError(400, "give max_tokens or max_completion_tokens, not both", "max_completion_tokens")
    max_tokens = body.max_completion_tokens or body.max_tokens
    check_caps(settings, max_turns=body.rise.max_turns, samples=body.rise.samples_per_turn, max_tokens=max_tokens,
               n=body.n, tokens_param="max_completion_tokens" if body.max_completion_tokens else "max_tokens",
               samples_param="rise.samples_per_turn")
    temperature = 1.0 if body.temperature is None else body.temperature
    configs = [build_config(settings, body.rise, temperature=temperature, top_p=body.top_p or 1.0,
                            max_tokens=max_tokens, seed=None if body.seed is None else body.seed + 7919 * i,
                            stop=body.stops()) for i in range(body.n)]
    deadline = deadline_for(request, body.rise.timeout)
    state = request.app.state
    checker, oracle = checker_and_oracle(state, body.rise, deadline)
    context = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in history]
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    async def choice(i: int, cfg, on_event) -> RefineResult:
        try:
            return await refine(engine, question, checker, cfg, oracle=oracle, history=context, deadline=deadline,
                                on_event=None if on_event is None else _tagged(on_event, i))
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
        return results

    if not body.stream:
        results = await until_disconnect(request, run_mapped(run(), "messages", model, state), model,
                                         "/v1/chat/completions")
        return _completion(cid, created, model, results)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    return StreamingResponse(event_stream(run, _chunk_renderer(cid, created, model, body.n, include_usage), "messages",
                                          model, "/v1/chat/completions", state),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _tagged(on_event, index: int):
    return lambda e: on_event({**e, "choice": index})


def _finish_reason(r: RefineResult) -> str:
    if not r.turns:  # a choice cut off by the deadline before its first turn finished
        return "length"
    turn = next(t for t in r.turns if t.index == r.final_turn)
    sample = next((s for s in turn.samples if s.text == r.final_text), turn.samples[turn.chosen])
    return "length" if sample.finish_reason == "length" else "stop"


def _usage(results: list[RefineResult]) -> dict:
    p = sum(r.prompt_tokens for r in results)
    c = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _trace(r: RefineResult) -> dict:
    d = r.to_dict()
    d.pop("final_text")
    return d


def _completion(cid: str, created: int, model: str, results: list[RefineResult]) -> dict:
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": i, "message": {"role": "assistant", "content": r.final_text},
                     "finish_reason": _finish_reason(r), "logprobs": None} for i, r in enumerate(results)],
        "usage": _usage(results),
        "rise": {"choices": [_trace(r) for r in results]},
    }


def _chunk_renderer(cid: str, created: int, model: str, n: int, include_usage: bool):
    def chunk(choices: list[dict], **extra) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **extra}
        if include_usage and "usage" not in extra:
            body["usage"] = None
        return sse(body)

    def delta(i: int, d: dict, finish: str | None = None) -> dict:
        return {"index": i, "delta": d, "finish_reason": finish, "logprobs": None}

    started = set()

    def render(event: dict) -> list[str]:
        kind = event["type"]
        if kind == "error":
            return [sse(event["error"]), sse("[DONE]")]
        if kind == "result":
            results: list[RefineResult] = event["result"]
            out = [chunk([delta(i, {"content": r.final_text})]) for i, r in enumerate(results)]
            out += [chunk([delta(i, {}, _finish_reason(r))], rise={"index": i, **_trace(r)}) for i, r in enumerate(results)]
            if include_usage:
                out.append(chunk([], usage=_usage(results)))
            return out + [sse("[DONE]")]
        i = event["choice"]
        out = []
        if i not in started:
            started.add(i)
            out.append(chunk([delta(i, {"role": "assistant", "content": ""})]))
        if kind == "turn_start":
            text = f"[turn {event['turn']}]\n"
        elif kind == "delta":
            if event["sample"] != 0:
                return out
            text = event["text"]
        else:
            verdict = {True: "correct", False: "incorrect", None: "unchecked"}[event["correct"]]
            text = f"\n[answer: {event['answer']} ({verdict})]\n"
        out.append(chunk([delta(i, {"reasoning_content": text})]))
        return out

    return render
