"""One checker class, configured per task family: what a model's answer is, and whether two
answers are the same number or expression.

- `synthetic`: the model writes "... The answer is 31."; the answer is what follows that phrase.
- `gsm8k`: free text, `\\boxed{}`, "The answer is 18", "#### 18"; gold solutions end in `#### N`.
- `math`: LaTeX answers, usually in `\\boxed{}`; gold is the `answer` field or a solution's last box.

Equivalence is math-verify's (`1,000` = `1000` = `1000.0`, `\\frac12` = `0.5`, `$18` = `18`).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

FAMILIES = ("synthetic", "gsm8k", "math")
_ANSWER_IS = re.compile(r"[Tt]he (?:final )?answer is[:\s]*\$?\s*(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


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
        if predicted is None or reference is None:
            return False
        predicted, reference = predicted.strip(), reference.strip()
        if predicted == reference:
            return True
        if _NUMBER.fullmatch(predicted) and _NUMBER.fullmatch(reference):  # plain numerals: exact decimal
            return Decimal(predicted) == Decimal(reference)  # compare (math-verify would agree, ~1000x slower)
        return _equivalent(predicted, reference)

    def is_correct(self, text: str, reference: str) -> bool:
        return self.equivalent(self.extract(text), reference)


@lru_cache(maxsize=8)
def get_checker(family: str) -> AnswerChecker:
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; expected one of {', '.join(FAMILIES)}")
    return AnswerChecker(family)


def _timeout() -> int | None:
    # math-verify's timeouts use SIGALRM, which only the main thread may set.
    return 5 if threading.current_thread() is threading.main_thread() else None


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


@lru_cache(maxsize=65536)
def _equivalent(predicted: str, reference: str) -> bool:
    gold, pred = _parse_answer(reference), _parse_answer(predicted)
    if not gold or not pred:
        return False
    return bool(verify(list(gold), list(pred), timeout_seconds=_timeout()))
