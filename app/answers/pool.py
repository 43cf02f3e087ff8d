"""Answer checks off the event loop, for the server: a bounded pool of worker processes
(`app/answers/worker.py`) that run math-verify with a time cap per parse or comparison, inside the
request's deadline. A worker whose call outlasts its caps is killed and replaced. What runs out of
time counts as "no answer" / "not equivalent" and is counted in `rise_answer_check_timeouts_total`.

Checks that need no math-verify (the synthetic task's regular expression, identical strings, two
plain numerals) stay in the server process: only what could be slow crosses to a worker.

`app.refine.checks.PooledChecks` runs one request's checks through it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

from app import metrics

log = logging.getLogger("rise.answers")
SLACK_S = 1.0  # a call's time beyond its caps: the pipe and a worker's scheduling
BUDGET_CAPS = 3  # a call's whole budget, in caps (each parse or comparison has one cap)
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class _Worker:
    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.answers.worker", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env, limit=2**24)
        line = await self.proc.stdout.readline()
        if not line or not json.loads(line).get("ready"):
            self.kill()
            raise RuntimeError("answer-check worker failed to start")

    async def call(self, request: dict) -> dict:
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError("answer-check worker exited")
        return json.loads(line)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        self.proc = None


class CheckPool:
    """`workers` processes, each with `cap_s` seconds per parse or comparison."""

    def __init__(self, workers: int = 2, cap_s: float = 1.0) -> None:
        self.size, self.cap_s = workers, cap_s
        self._idle: asyncio.Queue[_Worker] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()
        self._all: list[_Worker] = []

    def start(self) -> None:
        """Start the workers in the background (idempotent; again after a change of event loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self.close()
        self._loop, self._idle = loop, asyncio.Queue()
        for _ in range(self.size):
            self._spawn(_Worker())

    async def run(self, op: str, family: str, args: list, deadline: float | None) -> tuple[object, int]:
        """(result, timeouts) of one worker call; result None when it could not finish in time. A
        call waits for a free worker (in arrival order) about as long as two calls take, then holds
        it at most BUDGET_CAPS caps (the worker's own budget) plus one cap and the slack, all within
        `deadline`."""
        self.start()
        budget = BUDGET_CAPS * self.cap_s
        until = time.monotonic() + 2 * (budget + self.cap_s) + SLACK_S  # others' calls ahead of this one
        if deadline is not None:
            until = min(until, deadline)
        try:
            worker = await asyncio.wait_for(self._idle.get(), max(until - time.monotonic(), 0.001))
        except asyncio.TimeoutError:  # every worker stayed busy for this call's whole allowance
            metrics.ANSWER_CHECK_TIMEOUTS.labels("busy").inc()
            return None, 1
        until = time.monotonic() + budget + self.cap_s + SLACK_S
        if deadline is not None:
            until = min(until, deadline)
        request = {"op": op, "family": family, "args": args, "cap": self.cap_s, "budget": budget}
        try:
            answer = await asyncio.wait_for(worker.call(request), max(until - time.monotonic(), 0.001))
        except BaseException as e:  # out of time, cancelled, or the worker died: replace it
            worker.kill()
            self._spawn(worker)
            if isinstance(e, (asyncio.TimeoutError, RuntimeError, ValueError, OSError)):
                metrics.ANSWER_CHECK_TIMEOUTS.labels("killed").inc()
                return None, 1
            raise
        self._idle.put_nowait(worker)
        timeouts = int(answer.get("timeouts", 0))
        if timeouts:
            metrics.ANSWER_CHECK_TIMEOUTS.labels("capped").inc(timeouts)
        return answer.get("result"), timeouts

    def _spawn(self, worker: _Worker) -> None:
        async def go():
            for attempt in range(5):
                try:
                    await worker.start()
                    self._idle.put_nowait(worker)
                    return
                except (OSError, RuntimeError, ValueError) as e:
                    log.error("answer-check worker failed to start: %s", type(e).__name__)
                    await asyncio.sleep(0.5 * 2 ** attempt)

        if worker not in self._all:
            self._all.append(worker)
        task = self._loop.create_task(go())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Kill the workers (without waiting for them: see `aclose`)."""
        for task in self._tasks:
            task.cancel()
        for worker in self._all:
            worker.kill()
        self._all, self._tasks, self._loop = [], set(), None

    async def aclose(self) -> None:
        """Kill the workers and reap them."""
        procs = [w.proc for w in self._all if w.proc is not None]
        self.close()
        for proc in procs:
            await proc.wait()
            getattr(proc, "_transport", None) and proc._transport.close()  # its pipes now, not at GC
