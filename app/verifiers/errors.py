"""What can go wrong with a verifier: a request's bad `verifier` object (a 400 naming the field), or
a call that could not give a verdict (the turn is unchecked, counted under its outcome).

    .venv/bin/python -m pytest -q tests/refine/test_oracles_builtin.py
"""

from __future__ import annotations


class VerifierError(ValueError):
    """A request's verifier cannot be used: `field` is where (`name`, `pattern`, `schema`, ...);
    `status` 400, or 503 when the server is too busy to check it now."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


class Unchecked(Exception):
    """A verifier call gave no verdict; `outcome` is the metrics label."""

    outcome = "error"


class CheckTimeout(Unchecked):
    outcome = "timeout"


class CheckFailed(Unchecked):
    outcome = "error"


class Garbage(Unchecked):
    """The verifier answered, but not `{"correct": bool, "feedback"?: str}`."""

    outcome = "invalid"
