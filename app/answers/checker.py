"""One checker class, configured per task family: what a model's answer is, and whether two
answers are the same number or expression.

- `synthetic`: the model writes "... The answer is 31."; the answer is what follows that phrase.
- `gsm8k`: free text, `\\boxed{}`, "The answer is 18", "#### 18"; gold solutions end in `#### N`.
- `math`: LaTeX answers, usually in `\\boxed{}`; gold is the `answer` field or a solution's last box.

Equivalence is math-verify's (`1,000` = `1000` = `1000.0`, `\\frac12` = `0.5`, `$18` = `18`).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

FAMILIES = ("synthetic", "gsm8k", "math")
_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is[:\s]*(?:\$\s*)?(-?[\d,]*\.?\d+)")  # linear in spaces
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
# math-verify logs the text it failed to parse ("Timeout during parsing: <reference>"): never let an
# answer or a reference reach a log line through it.
for _name in ("math_verify", "latex2sympy2_extended"):
    logging.getLogger(_name).setLevel(logging.CRITICAL + 1)


@dataclass(frozen=True)
class AnswerChecker:
    family: str

    def extract(self, text: str) -> str | None:
        """The answer a model's text commits to, as a string, or None when it states none."""
        if self.family == "synthetic":
            m = None
            for m in _ANSWER_IS.finditer(text):
                pass
            return m.group(1).replace(",", "") if m else None
        if self.family == "gsm8k":
            m = _HASHES.search(text)
            if m:
                text = m.group(1)
        parsed = _parse(text, latex_only=self.family == "math")
        return parsed[1] if len(parsed) > 1 else None

    def gold(self, solution: str) -> str | None:
        """The final answer of a dataset's worked solution (`#### N`, or the last `\\boxed{}`)."""
        if self.family == "gsm8k":
            m = _HASHES.search(solution)
            return m.group(1).replace(",", "") if m else None
        return self.extract(solution)

    def equivalent(self, predicted: str | None, reference: str | None) -> bool:
        fast = quick_equivalent(predicted, reference)
        if fast is not None:
            return fast
        return _equivalent(predicted.strip(), reference.strip())

    def extract_is_cheap(self) -> bool:
        """Whether `extract` is a regular expression (no math-verify parse of the text)."""
        return self.family == "synthetic"

    def is_correct(self, text: str, reference: str) -> bool:
        return self.equivalent(self.extract(text), reference)


@lru_cache(maxsize=8)
def get_checker(family: str) -> AnswerChecker:
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; expected one of {', '.join(FAMILIES)}")
    return AnswerChecker(family)


def quick_equivalent(predicted: str | None, reference: str | None) -> bool | None:
    """The verdict when it needs no math-verify (a missing answer, the same string, two plain
    numerals compared as exact decimals, ~1000x faster than math-verify and in agreement with it),
    or None when math-verify must decide."""
    if predicted is None or reference is None:
        return False
    predicted, reference = predicted.strip(), reference.strip()
    if predicted == reference:
        return True
    if _NUMBER.fullmatch(predicted) and _NUMBER.fullmatch(reference):
        return Decimal(predicted) == Decimal(reference)
    return None


# math-verify's own time limit (SIGALRM, main thread only). A process that caps each call itself
# (app/answers/worker.py) turns it off, since a second alarm would reset its own.
OWN_TIMEOUT_S: int | None = 5


def _timeout() -> int | None:
    return OWN_TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _parse(text: str, latex_only: bool = False) -> list:
    configs = [LatexExtractionConfig()] if latex_only else [LatexExtractionConfig(), ExprExtractionConfig()]
    return parse(text, extraction_config=configs, parsing_timeout=_timeout())


@lru_cache(maxsize=65536)
def _parse_answer(answer: str) -> tuple:
    s = answer.strip().replace("\\$", "").replace("\\!", "")  # currency signs, thin spaces
    if "$" not in s and "\\boxed" not in s:
        s = f"${s}$"
    parsed = _parse(s)
    if not parsed:
        parsed = _parse(answer)
    return tuple(parsed)


def parse_answer(answer: str) -> tuple:
    """math-verify's parse of an answer string (empty when it does not parse)."""
    return _parse_answer(answer)


def verify_parsed(gold: tuple, pred: tuple) -> bool:
    """math-verify's verdict on two parsed answers."""
    if not gold or not pred:
        return False
    return bool(verify(list(gold), list(pred), timeout_seconds=_timeout()))


@lru_cache(maxsize=65536)
def _equivalent(predicted: str, reference: str) -> bool:
    return verify_parsed(_parse_answer(reference), _parse_answer(predicted))
