"""The answer checks the loop awaits: extract answers from texts, test two answers for
equivalence, group answers for a vote. `as_checks` adapts a plain (synchronous) checker, as
evaluation and training use in-process; the server passes `app.answers.pool.PooledChecker`, which
runs math-verify in capped worker processes so that no check blocks the event loop."""

from __future__ import annotations

from typing import Protocol, Sequence

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
