"""What the loop needs from an answer checker (kept free of math-verify so that the loop and the
training code import without it)."""

from typing import Protocol


class Checker(Protocol):
    def extract(self, text: str) -> str | None: ...

    def equivalent(self, predicted: str | None, reference: str | None) -> bool: ...
