"""Regular expressions a request brings (the `regex` check, `pattern` in a JSON schema), made safe to
run: capped in length, compiled at request time with the `regex` module, refused when their counted
repeats would expand past a cap at compile time (`(a{1000}){1000}` compiles a million states), and
searched with a time cap, past which the check is unchecked instead of a stuck event loop
(catastrophic backtracking such as `(x+x+)+y`).

    .venv/bin/python -m pytest -q tests/refine/test_oracles_builtin.py -k pattern
"""

from __future__ import annotations

import re
from functools import lru_cache

import regex

from app.verifiers.errors import CheckTimeout

MAX_PATTERN_CHARS = 500
MAX_REPEAT_COST = 100_000  # counted repeats, each times the repeats around it, summed
SEARCH_TIMEOUT_S = 0.25

_COUNTED = re.compile(r"\{(\d*)(?:,(\d*))?\}")
_VERBOSE = re.compile(r"\(\?[\^\w-]*x")  # an inline verbose flag anywhere: (?x), (?ix), (?x:...), (?V1x)


def compile_pattern(pattern: str, flags: int = 0) -> regex.Pattern:
    """The compiled pattern; ValueError saying why it is refused."""
    if not pattern:
        raise ValueError("the pattern is empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    cost = repeat_cost(pattern)
    if cost > MAX_REPEAT_COST:
        raise ValueError(f"the pattern's counted repeats ({{m,n}}) nest too deep or too large "
                         f"(they multiply to {cost}, over {MAX_REPEAT_COST})")
    try:
        return _compile(pattern, flags)
    except (regex.error, OverflowError, RecursionError) as e:
        raise ValueError(f"the pattern does not compile: {e}") from None


@lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> regex.Pattern:
    return regex.compile(pattern, flags)


def search(compiled: regex.Pattern, subject: str, full: bool = False) -> bool:
    """Whether `compiled` matches `subject` (all of it with `full`); CheckTimeout past SEARCH_TIMEOUT_S."""
    try:
        found = (compiled.fullmatch if full else compiled.search)(subject, timeout=SEARCH_TIMEOUT_S)
    except TimeoutError:
        raise CheckTimeout(f"the pattern ran longer than {SEARCH_TIMEOUT_S}s") from None
    return found is not None


def repeat_cost(pattern: str) -> int:
    """An upper estimate of the states the `regex` module compiles for the pattern's counted
    repeats: each repeat's bound times the bounds of the repeated groups around it, summed. Comments
    (`(?#...)`) and, once an inline `x` flag appears anywhere, whitespace and `#` comments (verbose
    mode: also inside `{m, n}`) may stand between a group and its repeat; they hide nothing here."""
    verbose = bool(_VERBOSE.search(pattern))
    groups: dict[int, int] = {}  # position of a group's ')' -> position of its '('
    opened: list[int] = []
    repeats: list[tuple[int, int, int]] = []  # (position, bound, position of what it repeats)
    i, in_class, prev = 0, False, -1  # prev: the last character that is not a comment or (verbose) whitespace
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            prev, i = i, i + 2
            continue
        if in_class:
            in_class = c != "]"
        elif pattern.startswith("(?#", i):
            i = _past(pattern, ")", i)
            continue
        elif verbose and c.isspace():
            i += 1
            continue
        elif verbose and c == "#":
            i = _past(pattern, "\n", i)
            continue
        elif c == "[":
            prev, in_class, i = i, True, i + 1
            i += pattern[i:i + 1] == "^"
            i += pattern[i:i + 1] == "]"  # a leading ] is literal
            continue
        elif c == "(":
            opened.append(i)
        elif c == ")" and opened:
            groups[i] = opened.pop()
        elif c == "{" and (counted := _counted(pattern, i, verbose)):
            bound, end = counted
            repeats.append((i, min(bound, 10**9), prev))
            prev, i = i, end
            continue
        prev = i
        i += 1
    spans = [(groups[q], q, b) for _, b, q in repeats if q in groups]  # repeated groups: ('(', ')', bound)
    total = 0
    for p, b, _ in repeats:
        factor = b
        for start, end, gb in spans:
            if start < p < end:
                factor *= gb
        total += factor
    return total


def _past(pattern: str, end: str, i: int) -> int:
    """The position after the next `end` from `i` (the pattern's end when there is none)."""
    j = pattern.find(end, i)
    return len(pattern) if j < 0 else j + 1


def _counted(pattern: str, i: int, verbose: bool) -> tuple[int, int] | None:
    """(bound, position after '}') of a counted repeat `{m}`, `{m,}`, `{,n}`, `{m,n}` at `i`; None if
    the brace is a literal. Verbose mode allows whitespace and `#` comments inside the braces."""
    if not verbose:
        m = _COUNTED.match(pattern, i)
        if not m or not (m.group(1) or m.group(2)):
            return None
        low, high, end = m.group(1), m.group(2), m.end()
    else:
        body, j = [], i + 1
        while j < len(pattern) and pattern[j] != "}":
            if pattern[j] == "#":
                j = _past(pattern, "\n", j)
                continue
            if not pattern[j].isspace():
                body.append(pattern[j])
            j += 1
        m = _COUNTED.fullmatch("{" + "".join(body) + "}")
        if j >= len(pattern) or not m or not (m.group(1) or m.group(2)):
            return None
        low, high, end = m.group(1), m.group(2), j + 1
    return (int(high) if high else int(low or 0)), end
