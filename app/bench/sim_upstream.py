"""A simulated OpenAI-compatible upstream for measuring rise-serve's own cost (the gateway cost,
app/bench/gateway_cost.py): every chat completion is a fixed answer of `--tokens-per-turn` tokens,
generated at `--tokens-per-s` tokens per second per request, streamed one token per chunk (as vLLM
streams) or, without `stream`, returned whole after the same time. No model runs, so next to
rise-serve it costs little CPU, and rise-serve is what a measurement of its process sees.

    python -m app.bench.sim_upstream --port 9100 --tokens-per-s 500 --tokens-per-turn 54

GET /v1/models lists one model (`sim`); GET /stats gives the chat requests and tokens sent so far.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from app.cli_args import positive_float, positive_int

MODEL = "sim"
# one step of a re-check, as the shipped model writes them ("680*2=1360. "), then the answer
STEP = ["68", "0", "*", "2", "=", "13", "60", ". "]
END = ["The", " answer", " is", " 18", "59", "."]


def tokens(n: int) -> list[str]:
    """`n` token pieces: re-check steps, ending with "The answer is 1859." (when n allows)."""
    body = max(n - len(END), 0)
    return [STEP[i % len(STEP)] for i in range(body)] + END[:n - body]


def build_app(tokens_per_s: float, tokens_per_turn: int, max_model_len: int = 4096) -> Starlette:
    stats = {"chat_requests": 0, "streamed": 0, "completion_tokens": 0}

    async def models(_: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [
            {"id": MODEL, "object": "model", "owned_by": "sim", "max_model_len": max_model_len}]})

    async def stats_route(_: Request) -> JSONResponse:
        return JSONResponse(stats)

    async def chat(request: Request):
        body = await request.json()
        n = min(tokens_per_turn, int(body.get("max_tokens") or tokens_per_turn))
        pieces = tokens(n)
        finish = "stop" if n == tokens_per_turn else "length"
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4  # ~4 chars a token
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        stats["chat_requests"] += 1
        stats["completion_tokens"] += n
        if not body.get("stream"):
            await asyncio.sleep(n / tokens_per_s)
            return JSONResponse({"id": "sim", "object": "chat.completion", "created": int(time.time()), "model": MODEL,
                                 "choices": [{"index": 0, "finish_reason": finish,
                                              "message": {"role": "assistant", "content": "".join(pieces)}}],
                                 "usage": usage})
        stats["streamed"] += 1

        def event(delta: dict, reason: str | None = None) -> str:
            return "data: " + json.dumps({"id": "sim", "object": "chat.completion.chunk", "model": MODEL, "choices": [
                {"index": 0, "delta": delta, "finish_reason": reason}]}) + "\n\n"

        async def events():
            start = time.monotonic()
            yield event({"role": "assistant", "content": ""})
            for i, piece in enumerate(pieces):  # token i is due at start + (i+1)/rate: no drift
                await asyncio.sleep(max(0.0, start + (i + 1) / tokens_per_s - time.monotonic()))
                yield event({"content": piece})
            yield event({}, finish)
            if (body.get("stream_options") or {}).get("include_usage"):
                yield "data: " + json.dumps({"id": "sim", "object": "chat.completion.chunk", "model": MODEL,
                                             "choices": [], "usage": usage}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/models", models), Route("/stats", stats_route),
                             Route("/v1/chat/completions", chat, methods=["POST"])])


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    ap = argparse.ArgumentParser(prog="python -m app.bench.sim_upstream", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=positive_int, required=True)
    ap.add_argument("--tokens-per-s", type=positive_float, default=500.0, help="per request")
    ap.add_argument("--tokens-per-turn", type=positive_int, default=54)
    a = ap.parse_args(argv)
    uvicorn.run(build_app(a.tokens_per_s, a.tokens_per_turn), host="127.0.0.1", port=a.port, log_level="warning",
                access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
