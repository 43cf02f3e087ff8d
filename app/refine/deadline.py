"""A refinement's deadline that can be brought forward while the loop runs (a server that starts
draining shortens every running refinement's deadline to its shutdown grace).

    d = Deadline.after(30); result = await d.run(engine.generate(...)); d.shorten_to(time.monotonic() + 5)
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, TypeVar

from app.engines.base import CALL_DEADLINE

T = TypeVar("T")


class Deadline:
    def __init__(self, at: float) -> None:
        self.at = at  # a time.monotonic() instant
        self._moved: asyncio.Event | None = None

    @classmethod
    def after(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def shorten_to(self, at: float) -> None:
        """Bring the deadline forward (never back); waiting `run` calls notice at once."""
        if at < self.at:
            self.at = at
            if self._moved is not None:
                self._moved.set()

    async def run(self, work: Awaitable[T]) -> T:
        """Await `work`, cancelling it and raising asyncio.TimeoutError once the deadline passes."""
        if self.remaining() <= 0:
            getattr(work, "close", lambda: None)()  # never awaited: no warning
            raise asyncio.TimeoutError
        token = CALL_DEADLINE.set(self)  # the engine's task sees it (contextvars are copied at creation)
        try:
            task = asyncio.ensure_future(work)
        finally:
            CALL_DEADLINE.reset(token)
        try:
            while True:
                if self._moved is None or self._moved.is_set():
                    self._moved = asyncio.Event()
                moved = asyncio.ensure_future(self._moved.wait())
                try:
                    await asyncio.wait({task, moved}, timeout=max(self.remaining(), 0), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    moved.cancel()
                if task.done():
                    return task.result()
                if self.remaining() <= 0:
                    raise asyncio.TimeoutError
        finally:
            if not task.done():
                task.cancel()
                try:
                    await task
                except BaseException:  # noqa: BLE001 - its cancellation is what we asked for
                    pass


def as_deadline(deadline: float | Deadline | None) -> Deadline | None:
    return deadline if deadline is None or isinstance(deadline, Deadline) else Deadline(deadline)
