"""Stop strings for engines that cut the text themselves: the cut is at the earliest place where
any stop string starts (not at the first string of the list that matches), and a stream holds back
the text that could still turn out to be the start of a stop string.

    cut_at_stop("The answer", ("swer", " an"))  ->  "The"
"""

from __future__ import annotations

from typing import Sequence


def first_stop(text: str, stops: Sequence[str], start: int = 0) -> int | None:
    """Where the earliest stop string in `text[start:]` begins (an index into `text`), or None."""
    found = [at for s in stops if (at := text.find(s, start)) >= 0]
    return min(found) if found else None


def cut_at_stop(text: str, stops: Sequence[str], start: int = 0) -> tuple[str, bool]:
    """`text` up to its earliest stop string (searched from `start`), and whether one was found."""
    at = first_stop(text, stops, start)
    return (text, False) if at is None else (text[:at], True)


def hold_back(stops: Sequence[str]) -> int:
    """How many trailing characters a stream keeps back: a stop string still being generated
    starts within the last len(longest) - 1 characters, so nothing before them can be cut."""
    return max((len(s) for s in stops), default=1) - 1
