"""Large JSON bodies are decoded off the event loop.

FastAPI decodes a request's JSON body with `json.loads` on the event loop. A body near the 1 MB
limit takes 15-90 ms to decode on a loaded 2-core machine, and every body that arrived together was
decoded before the loop answered anything else (`/health` included). A body of `OFF_LOOP_BYTES` or
more is now decoded in one thread of its own. `json.loads` holds the GIL while it runs, but the loop
takes it back whenever it waits on the network, so a small request waits for a few decodes, not for
every one queued: 20 bodies of 880 KB at once held `/health` for 0.5-1.0 s, against 1.4-1.7 s decoded
on the loop (hostile review, 2026-12-03; admission and the body limit bound how many can queue).
Smaller bodies (nearly all) are decoded where they were, without a thread hop.

Two things still held the loop while one large body was decoded, and `_decode` takes both away:
- `json.loads` is one C call that keeps the GIL to its end (12-30 ms for 1 MB of small objects). With
  an `object_pairs_hook` written in Python, the decoder runs Python code at every object, where the
  interpreter hands the GIL over when the loop has waited its switch interval (5 ms). The decode costs
  about twice the CPU; the loop waits for a slice of it, not for all of it.
- Its tens of thousands of new objects set off garbage collections, up to full ones (19-28 ms, GIL
  held, in whichever thread allocated). The collector is paused for the decode; the objects are
  young and acyclic, and the first allocation after it collects them once, as young objects.

The routers that take request bodies use `OffLoopJSONRoute` as their `route_class`, the pattern of
FastAPI's "Custom Request and APIRoute class" guide.
"""

from __future__ import annotations

import asyncio
import gc
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

OFF_LOOP_BYTES = 64 * 1024
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rise-json")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(pairs)  # the same dict json.loads builds (a repeated key: the last one wins)


def _decode(body: bytes) -> Any:
    """`json.loads(body)` that lets the event loop in every few milliseconds (module docstring)."""
    was_enabled = gc.isenabled()
    gc.disable()  # this thread is the only one that pauses the collector
    try:
        return json.loads(body, object_pairs_hook=_object)
    finally:
        if was_enabled:
            gc.enable()


class OffLoopJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) >= OFF_LOOP_BYTES:
                self._json = await asyncio.get_running_loop().run_in_executor(_DECODER, _decode, body)
            else:
                self._json = json.loads(body)
        return self._json


class OffLoopJSONRoute(APIRoute):
    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            return await handler(OffLoopJSONRequest(request.scope, request.receive))

        return route
