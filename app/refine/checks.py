"""The answer checks the loop awaits: extract answers from texts, test two answers for
equivalence, group answers for a vote. `as_checks` adapts a plain (synchronous) checker, as
evaluation and training use in-process; the server passes `PooledChecks`, which runs math-verify in
capped worker processes (`app.answers.pool`) so that no check blocks the event loop."""

from __future__ import annotations

import asyncio
from typing import Protocol, Sequence

from app import metrics
from app.answers.checker import AnswerChecker, quick_equivalent
from app.answers.pool import CheckPool
from app.answers.protocol import Checker
from app.refine.vote import clusters


class Checks(Protocol):
    async def extract(self, texts: Sequence[str]) -> list[str | None]: ...

    async def equivalent(self, predicted: str | None, reference: str | None) -> bool: ...

    async def clusters(self, answers: Sequence[str | None]) -> list[tuple[str, list[int]]]: ...


class InlineChecks:
    """A synchronous checker's verdicts, computed where they are awaited."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker

    async def extract(self, texts: Sequence[str]) -> list[str | None]:
        return [self.checker.extract(t) for t in texts]

    async def equivalent(self, predicted: str | None, reference: str | None) -> bool:
        return self.checker.equivalent(predicted, reference)

    async def clusters(self, answers: Sequence[str | None]) -> list[tuple[str, list[int]]]:
        return clusters(answers, self.checker.equivalent)


def as_checks(checker: Checker | Checks) -> Checks:
    return checker if hasattr(checker, "clusters") else InlineChecks(checker)


class PooledChecks:
    """The loop's checks for one request, through `pool` within `deadline`. After `max_timeouts`
    checks ran out of time, the request's remaining slow checks are skipped (not equivalent)."""

    def __init__(self, checker: AnswerChecker, pool: CheckPool, deadline=None, max_timeouts: int = 3) -> None:
        self.checker, self.pool, self.deadline = checker, pool, deadline
        self.max_timeouts, self.timeouts = max_timeouts, 0
        self._one_at_a_time = asyncio.Lock()  # a request (all its choices) uses one worker at a time

    async def extract(self, texts: Sequence[str]) -> list[str | None]:
        if self.checker.extract_is_cheap():
            return [self.checker.extract(t) for t in texts]
        result = await self._run("extract", list(texts))
        return result if isinstance(result, list) and len(result) == len(texts) else [None] * len(texts)

    async def equivalent(self, predicted: str | None, reference: str | None) -> bool:
        fast = quick_equivalent(predicted, reference)
        if fast is not None:
            return fast
        result = await self._run("equivalent", [[predicted, reference]])
        return bool(result[0]) if isinstance(result, list) and result else False

    async def clusters(self, answers: Sequence[str | None]) -> list[tuple[str, list[int]]]:
        present = [a for a in answers if a is not None]
        if all(_plain(a) for a in present):  # numerals only: no math-verify needed
            return clusters(answers, lambda a, b: bool(quick_equivalent(a, b)))
        result = await self._run("clusters", list(answers))
        if not isinstance(result, list):  # out of time: each distinct string its own answer
            return clusters(answers, lambda a, b: a.strip() == b.strip())
        return [(rep, list(positions)) for rep, positions in result]

    async def _run(self, op: str, args: list):
        async with self._one_at_a_time:
            if self.timeouts >= self.max_timeouts:
                metrics.ANSWER_CHECK_TIMEOUTS.labels("skipped").inc()
                return None
            at = getattr(self.deadline, "at", self.deadline)  # a refine.deadline.Deadline, or an instant
            result, timeouts = await self.pool.run(op, self.checker.family, args, at)
            self.timeouts += timeouts
            return result


def _plain(answer: str) -> bool:
    return quick_equivalent(answer, "0") is not None
