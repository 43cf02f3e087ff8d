"""Large JSON bodies are decoded off the event loop.

FastAPI decodes a request's JSON body with `json.loads` on the event loop. A body near the 1 MB
limit takes 15-30 ms to decode on a 2-core machine, and four at once held every other request
(`/health` included) for about 100 ms. A body of `OFF_LOOP_BYTES` or more is now decoded in one
thread of its own: `json.loads` holds the GIL while it runs, but the loop gets it back between two
bodies, so a request waits for at most one decode, not for all those that arrived with it.
Smaller bodies (nearly all) are decoded where they were, without a thread hop.

The routers that take request bodies use `OffLoopJSONRoute` as their `route_class`, the pattern of
FastAPI's "Custom Request and APIRoute class" guide.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

OFF_LOOP_BYTES = 64 * 1024
_DECODER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rise-json")


class OffLoopJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            if len(body) >= OFF_LOOP_BYTES:
                self._json = await asyncio.get_running_loop().run_in_executor(_DECODER, json.loads, body)
            else:
                self._json = json.loads(body)
        return self._json


class OffLoopJSONRoute(APIRoute):
    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            return await handler(OffLoopJSONRequest(request.scope, request.receive))

        return route
