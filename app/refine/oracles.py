"""The oracle the loop asks after each sample: correct, incorrect, or unchecked, with optional feedback.

One small protocol (`Oracle.judge`) behind every kind of check, so that the loop stays engine- and
HTTP-agnostic: the reference answer (`ReferenceOracle`), the built-in checks and the operator's
verifier endpoints (`app/verifiers/`). A verdict of `correct=None` means the turn could not be
checked (a verifier that timed out, failed or answered garbage): the loop goes on as without an
oracle for that turn. A verdict's `feedback` becomes the next turn's feedback in place of the
request's template.

    .venv/bin/python -m pytest -q tests/refine/test_oracles.py
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Awaitable, Callable, Protocol, runtime_checkable

from app.answers.protocol import Checker
from app.refine.checks import Checks, as_checks


@dataclass(frozen=True)
class Verdict:
    correct: bool | None  # None: unchecked
    feedback: str | None = None  # the oracle's own feedback for the next turn (None: the request's template)

    @property
    def checked(self) -> bool:
        return self.correct is not None


UNCHECKED = Verdict(None)


@runtime_checkable
class Oracle(Protocol):
    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        """The verdict on one sample: its extracted `answer`, its full `text`, at turn `turn` (1-based)."""
        ...


LegacyOracle = Callable[[str | None, str], bool | Awaitable[bool]]  # (answer, text) -> correct?


class ReferenceOracle:
    """Compares the extracted answer with a reference answer; the reference never leaves this object."""

    def __init__(self, checker: Checker | Checks, reference: str) -> None:
        self._checks, self._reference = as_checks(checker), reference

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        return Verdict(bool(await self._checks.equivalent(answer, self._reference)))

    def __repr__(self) -> str:  # never the reference
        return "ReferenceOracle(<hidden>)"


class CallableOracle:
    """A plain function `(answer, text) -> bool` (or an awaitable of one) as an Oracle."""

    def __init__(self, fn: LegacyOracle) -> None:
        self.fn = fn

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        value = self.fn(answer, text)
        return Verdict(bool(await value if inspect.isawaitable(value) else value))


def reference_oracle(checker: Checker | Checks, reference: str) -> ReferenceOracle:
    """An oracle that compares the extracted answer with a reference answer."""
    return ReferenceOracle(checker, reference)


def as_oracle(oracle: Oracle | LegacyOracle | None) -> Oracle | None:
    if oracle is None or hasattr(oracle, "judge"):
        return oracle
    return CallableOracle(oracle)
