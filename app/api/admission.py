"""Admission control: at most `max_in_flight` refinements run and `max_queue` wait, in arrival
order; past that a 429 with `Retry-After`, and a 503 while the model is not ready or the server is
draining. Bounded: no request waits in an unbounded buffer, and a client that leaves while queued
gives its place back at once (its `http.disconnect` is watched while it waits).
"""

from __future__ import annotations

import asyncio
from collections import deque

from app import metrics
from app.api.middleware import replay, send_error

GUARDED = ("/v1/refine", "/v1/chat/completions", "/v1/responses")


class Admission:
    def __init__(self, app, state, max_in_flight: int, max_queue: int, model_name) -> None:
        self.app, self.state = app, state
        self.max_in_flight, self.max_queue = max_in_flight, max_queue
        self.model_name = model_name
        self.running = 0
        self._waiters: deque[asyncio.Future] = deque()
        state.admission = self  # for draining (app/api/drain.py)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in GUARDED or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        model = self.model_name()
        if getattr(self.state, "draining", False) or getattr(self.state, "engine", None) is None:
            metrics.SHED.labels(model, "not_ready").inc()
            reason = "shutting down" if getattr(self.state, "draining", False) else "the model is not ready"
            return await send_error(send, 503, f"{reason}; retry shortly", "not_ready", {"Retry-After": "2"})
        if self.running < self.max_in_flight and not self._waiters:
            self.running += 1
            metrics.RUNNING.labels(model).set(self.running)
        else:
            if len(self._waiters) >= self.max_queue:
                metrics.SHED.labels(model, "queue_full").inc()
                return await send_error(send, 429, "too many requests in flight; retry shortly", "overloaded",
                                        {"Retry-After": "1"})
            receive = await self._wait(model, scope["path"], receive)
            if receive is None:
                return  # the client left while queued
            if receive == "drain":
                metrics.SHED.labels(model, "not_ready").inc()
                return await send_error(send, 503, "shutting down; retry shortly", "not_ready", {"Retry-After": "2"})
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()

    async def _wait(self, model: str, route: str, receive):
        """Queue for a slot while watching the client; returns the receive callable for the app
        (replaying what was read meanwhile), or None if the client went away."""
        slot = asyncio.get_running_loop().create_future()
        self._waiters.append(slot)
        metrics.WAITING.labels(model).inc()
        seen: list[dict] = []
        listen = asyncio.ensure_future(receive())
        try:
            while not slot.done():
                await asyncio.wait({slot, listen}, return_when=asyncio.FIRST_COMPLETED)
                if slot.done() or not listen.done():
                    continue
                message = listen.result()
                if message["type"] == "http.disconnect":
                    self._waiters.remove(slot)
                    slot.cancel()
                    metrics.CANCELLED.labels(model, route).inc()
                    return None
                seen.append(message)
                listen = asyncio.ensure_future(receive())
        except BaseException:
            if slot.done() and not slot.cancelled() and slot.result() is None:
                self._release()  # the slot was handed over as this task was cancelled
            elif slot in self._waiters:
                self._waiters.remove(slot)
            raise
        finally:
            metrics.WAITING.labels(model).dec()
            if not listen.done():
                listen.cancel()
        if listen.done() and not listen.cancelled():
            seen.append(listen.result())
        if slot.result() == "drain":
            return "drain"  # no slot was handed over
        return replay(seen, receive)

    def drain(self) -> None:
        """The server is shutting down: every queued request gets a 503 now, not a slot later."""
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result("drain")

    def _release(self) -> None:
        """Hand the slot to the first waiter, or free it."""
        while self._waiters:
            slot = self._waiters.popleft()
            if not slot.done():
                slot.set_result(None)
                return
        self.running -= 1
        metrics.RUNNING.labels(self.model_name()).set(self.running)
