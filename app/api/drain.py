"""Graceful shutdown, in two steps. On SIGTERM `/ready` answers 503 (`draining`) at once while
requests are still served as before, for `RISE_DRAIN_READY_DELAY_S` (default 5 s): a load balancer
that checks `/ready` every few seconds, or a Kubernetes Service whose endpoints are still being
updated, stops sending before anything is refused. Then the drain: every running refinement's
deadline is brought forward to the end of the grace period (`RISE_SHUTDOWN_GRACE_S`), so it ends with `stop_reason: "deadline"` and its
finished turns (or a 503 if it finished none; a stream ends with an error event and `[DONE]`).
While any still runs the socket stays open: new and queued refinements get 503 in the API's error
shape (a load balancer that has not yet noticed sees a clear answer, not a refused connection) and
`/ready` still says `draining`. Once nothing runs (at most the delay, the grace and a few seconds to
write the last answers) uvicorn stops listening and the process exits 0. A second signal stops at once.

    rise serve & sleep 5; kill -TERM %1
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

log = logging.getLogger("rise.api")
FLUSH_S = 5.0  # after the grace: time for the last answers to be written before uvicorn's own stop


def begin_drain(state, grace_s: float) -> None:
    """Refuse new refinements and bring every running one's deadline forward to now + grace."""
    if getattr(state, "draining", False):
        return
    state.draining = True
    state.drain_until = time.monotonic() + grace_s
    for deadline in list(state.deadlines):
        deadline.shorten_to(state.drain_until)
    admission = getattr(state, "admission", None)
    if admission is not None:
        admission.drain()
    log.info("draining: %d refinement(s) running get %.1f s", _running(state), grace_s)


def _running(state) -> int:
    """Requests the drain waits for: refinements running, and requests still receiving a body (they
    get their 503 within half a second)."""
    admission = getattr(state, "admission", None)
    return (0 if admission is None else admission.running) + getattr(state, "receiving", 0)


def leaving(state) -> bool:
    """Whether the server is shutting down: `/ready` answers 503 from the first SIGTERM on, before
    new requests are refused (`state.draining`)."""
    return getattr(state, "leaving", False) or getattr(state, "draining", False)


def draining_server(config, state, grace_s: float, ready_delay_s: float = 0.0):
    """uvicorn's server whose first SIGTERM turns `/ready` to 503, keeps serving for `ready_delay_s`,
    then drains (above) before uvicorn's own shutdown starts."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if sig != signal.SIGTERM or leaving(state) or self.should_exit:
                return super().handle_exit(sig, frame)  # SIGINT, or a second signal: stop now
            state.leaving = True
            log.info("SIGTERM: /ready answers 503; requests are still served for %.1f s, then the drain", ready_delay_s)
            loop = asyncio.get_event_loop()
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain()))

        async def _drain(self) -> None:
            if ready_delay_s > 0:
                await asyncio.sleep(ready_delay_s)
            begin_drain(state, grace_s)
            await self._stop_when_idle()

        async def _stop_when_idle(self) -> None:
            until = state.drain_until + FLUSH_S
            while _running(state) > 0 and time.monotonic() < until:
                await asyncio.sleep(0.05)
            self.should_exit = True  # a drained SIGTERM is a clean exit: status 0 (no signal re-raised)

    config.timeout_graceful_shutdown = FLUSH_S
    return DrainingServer(config)
