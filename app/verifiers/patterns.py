"""Regular expressions a request brings (the `regex` check, `pattern` in a JSON schema), made safe to
run: capped in length, compiled at request time with the `regex` module, refused when their counted
repeats would expand past a cap at compile time (`(a{1000}){1000}` compiles a million states), and
searched with a time cap, past which the check is unchecked instead of a stuck event loop
(catastrophic backtracking such as `(x+x+)+y`).

A compile cannot be interrupted and holds the GIL, so each is kept short (MAX_REPEAT_COST: about
15 ms at most on one core), and one request's patterns share a `Budget`: a total cost, a count and
a time cap checked before each compile. The server runs the whole check, and each search, in
CHECK_THREAD (`in_check_thread`), so that no request's patterns stall the event loop.

    .venv/bin/python -m pytest -q tests/refine/test_oracles_builtin.py -k pattern
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial

import regex

from app.verifiers.errors import CheckTimeout

MAX_PATTERN_CHARS = 500
MAX_REPEAT_COST = 20_000  # one pattern (repeat_cost): about 15 ms of compile time at most
HEAVY = 10  # the cost of `\X` or `\R`, against 1 for any other part
CAPTURE = 20  # the cost of a capturing group (what it holds apart)
FOLD = 200  # a class's cost per character it holds where case may fold fully
MAX_REQUEST_COST = 100_000  # all the patterns of one request together
MAX_REQUEST_PATTERNS = 256
CHECK_TIMEOUT_S = 1.0  # compiling one request's patterns
SEARCH_TIMEOUT_S = 0.25

# The one thread for every request's verifier work (arrival checks, pattern searches, schema
# validation): that work holds the GIL in 5 ms slices, and the event loop waits its turn behind
# each thread doing it (six at once held /health for 300-600 ms; one, 20 ms). Work that waits too
# long for it is refused (503) or unchecked; the default executor (tokenizing) stays free.
CHECK_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rise-verifier-check")


async def in_check_thread(fn, *args):
    """`fn(*args)` in CHECK_THREAD (cancelled while it waits: it never runs)."""
    call = partial(contextvars.copy_context().run, fn, *args)
    return await asyncio.get_running_loop().run_in_executor(CHECK_THREAD, call)


_COUNTED = re.compile(r"\{(\d*)(?:,(\d*))?\}")
_POSIX = re.compile(r"\[:\^?\w+:\]")  # [:alpha:] in a class
_CAPTURING = re.compile(r"\((?!\?)|\(\?P?<(?![=!])|\(\?'")  # (...), (?P<name>...), (?<name>...), (?'name'...)


class Budget:
    """What one request's patterns may cost together: MAX_REQUEST_COST, MAX_REQUEST_PATTERNS and
    `seconds` from `start()`, checked before each compile (and, in a schema's check, at each keyword):
    the check stops itself there, or once `stop()` is called."""

    def __init__(self, seconds: float | None = None, start: bool = True) -> None:
        self.seconds, self.until = CHECK_TIMEOUT_S if seconds is None else seconds, math.inf
        self.cost = self.count = 0
        self.started = self.stopped = False
        self._lock = threading.Lock()
        if start:
            self.start()

    def start(self) -> None:
        """Start the clock; ValueError if the check was stopped before it began."""
        with self._lock:
            if self.stopped:
                raise ValueError("the check was stopped before it began")
            if not self.started:
                self.started, self.until = True, time.monotonic() + self.seconds

    def stop(self) -> bool:
        """Stop the check at its next pattern or keyword; whether it had started."""
        with self._lock:
            self.stopped, self.until = True, -math.inf
            return self.started

    def charge(self, cost: int) -> None:
        """Count one more pattern of `cost`; ValueError once the request is past its budget."""
        if time.monotonic() > self.until:
            raise ValueError(f"checking the request's patterns took longer than {self.seconds:g} s; "
                             "send fewer or simpler patterns")
        self.count, self.cost = self.count + 1, self.cost + cost
        if self.count > MAX_REQUEST_PATTERNS:
            raise ValueError(f"a request may hold at most {MAX_REQUEST_PATTERNS} patterns")
        if self.cost > MAX_REQUEST_COST:
            raise ValueError(f"the request's patterns together cost more than {MAX_REQUEST_COST} "
                             "(the sum of their costs); send fewer or simpler patterns")


def compile_pattern(pattern: str, flags: int = 0, budget: Budget | None = None) -> regex.Pattern:
    """The compiled pattern, charged to the request's `budget` when given; ValueError saying why it
    is refused."""
    if not pattern:
        raise ValueError("the pattern is empty")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    cost = repeat_cost(pattern, flags)
    if cost > MAX_REPEAT_COST:
        raise ValueError(f"the pattern is too costly to compile: with its counted repeats ({{m,n}}) expanded "
                         f"it costs {cost}, over {MAX_REPEAT_COST}")
    if budget is not None:
        budget.charge(cost)
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


def repeat_cost(pattern: str, flags: int = 0) -> int:
    """An upper estimate of what the `regex` module compiles for the pattern, in units of about
    0.2 us of compile time. Each part (a character, an escape, a class, a group with all it holds)
    counts once per copy of it that counted repeats make, on it or on groups around it (`{m,n}` makes
    n copies, `{m,}` m; a part not repeated counts once). Some parts count more: `\\X` or `\\R` (a
    grapheme, a line break) HEAVY; a capturing group CAPTURE (copies of an empty one, `(?:()){4000}`,
    take time quadratic in their number); a class its length, FOLD times that where the pattern may
    fold case fully (`(?fi)[\\x00-\\uffff]` compiles every character's foldings). Comments (`(?#...)`)
    and, once an inline `x` flag appears anywhere, whitespace and `#` comments (verbose mode: also
    inside `{m, n}`) may stand between a group and its repeat; they hide nothing here."""
    verbose = bool(_inline("x").search(pattern))
    v1 = bool(_inline("V1").search(pattern))
    fold = FOLD if _inline("f|V1").search(pattern) and (flags & regex.IGNORECASE or _inline("i").search(pattern)) \
        else 1
    groups: list[list[int]] = [[]]  # per open group, the sizes of its parts so far
    own: list[int] = [0]  # per open group, what it counts itself
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            groups[-1].append(HEAVY if pattern[i + 1:i + 2] in ("X", "R") else 1)
            i += 2
        elif pattern.startswith("(?#", i):
            i = _past(pattern, ")", i)
        elif verbose and c.isspace():
            i += 1
        elif verbose and c == "#":
            i = _past(pattern, "\n", i)
        elif c == "[":
            end = _class_end(pattern, i, v1)
            groups[-1].append(max(1, end - i - 2) * fold)
            i = end
        elif c == "(":
            groups.append([])
            own.append(CAPTURE if _CAPTURING.match(pattern, i) else 1)
            i += 1
        elif c == ")" and len(groups) > 1:
            _close(groups, own)
            i += 1
        elif c == "{" and groups[-1] and (counted := _counted(pattern, i, verbose)):
            bound, i = counted
            groups[-1][-1] *= min(bound, 10**9)  # every copy, and all it holds, counts
        else:
            groups[-1].append(1)
            i += 1
    while len(groups) > 1:  # an unclosed group (it does not compile)
        _close(groups, own)
    return sum(groups[0])


@lru_cache(maxsize=8)
def _inline(flags: str) -> re.Pattern:
    """An inline flag among `flags` anywhere: `(?x)`, `(?ix)`, `(?x:...)`, `(?V1x)`, `(?-f)`."""
    return re.compile(r"\(\?[\^\w-]*(?:" + flags + ")")


def _class_end(pattern: str, i: int, v1: bool) -> int:
    """The position after the class that opens at `i`: a leading `]` is literal, `[:alpha:]` is a
    POSIX class, and in version 1 (`(?V1)`) classes nest (`[[a-z]--[aeiou]]`)."""
    j, depth = i + 1, 1
    j += pattern[j:j + 1] == "^"
    j += pattern[j:j + 1] == "]"
    while j < len(pattern):
        if pattern[j] == "\\":
            j += 2
            continue
        if posix := _POSIX.match(pattern, j):
            j = posix.end()
            continue
        if pattern[j] == "[" and v1:
            depth += 1
        elif pattern[j] == "]":
            depth -= 1
            if not depth:
                return j + 1
        j += 1
    return len(pattern)


def _close(groups: list[list[int]], own: list[int]) -> None:
    """The innermost open group becomes one part of the group around it."""
    parts = groups.pop()
    groups[-1].append(own.pop() + sum(parts))


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
