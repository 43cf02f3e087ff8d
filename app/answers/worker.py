"""A worker process for answer checks (extraction and math-verify equivalence) that the server
must not run on its event loop: each parse or comparison is capped by SIGALRM (this process's
main thread), and a parse that ran out of time is remembered, so a crafted reference costs one cap,
not one per comparison. The parent (`app/answers/pool.py`) kills the process if a call outlasts
its caps (a computation stuck in C code, which no signal interrupts).

Protocol: one JSON object per line. The worker first writes {"ready": true}; then for each request
{"op", "family", "args", "cap", "budget"} it answers {"result", "timeouts"}: each parse or
comparison gets `cap` seconds, the whole call `budget` seconds (what is left then is not run). Nothing it handles is logged.

    echo '{"op": "equivalent", "family": "math", "args": [["0.5", "\\\\frac12"]], "cap": 1}' | python -m app.answers.worker
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from app.answers import checker as _checker
from app.answers.checker import get_checker, parse_answer, quick_equivalent, verify_parsed
from app.refine.vote import clusters

CACHE_ENTRIES = 20_000
SLOW_AFTER = 2  # comparisons out of time before an answer counts as never equivalent to anything else


class _Cap(BaseException):
    """Raised by the alarm; a BaseException, so math-verify's `except Exception` cannot swallow it."""


class Worker:
    def __init__(self) -> None:
        self.cap, self.until = 1.0, float("inf")
        self.timeouts = 0
        self._parsed: dict[str, tuple] = {}
        self._verdicts: dict[tuple[str, str], bool] = {}
        self._extracted: dict[tuple[str, str], str | None] = {}
        self._slow: dict[str, int] = {}  # answer -> comparisons with it that ran out of time

    def handle(self, request: dict) -> dict:
        self.cap, self.timeouts = max(float(request.get("cap", 1.0)), 0.001), 0
        # a call's whole time: past it, what is left counts as out of time without running, so one
        # call holds this worker for at most budget + cap
        self.until = time.monotonic() + float(request.get("budget", 2 * self.cap))
        checker = get_checker(request["family"])
        op, args = request["op"], request["args"]
        if op == "extract":
            result = [self.extract(checker, t) for t in args]
        elif op == "equivalent":
            result = [self.equivalent(a, b) for a, b in args]
        elif op == "clusters":
            result = self.clusters(args)
        else:
            raise ValueError(f"unknown op {op!r}")
        return {"result": result, "timeouts": self.timeouts}

    def extract(self, checker, text: str) -> str | None:
        key = (checker.family, text)
        if key not in self._extracted:
            self._remember(self._extracted, key, self._capped(checker.extract, text, default=None))
        return self._extracted[key]

    def equivalent(self, predicted: str | None, reference: str | None) -> bool:
        fast = quick_equivalent(predicted, reference)
        if fast is not None:
            return fast
        key = (predicted.strip(), reference.strip())
        if key not in self._verdicts:
            if max(self._slow.get(key[0], 0), self._slow.get(key[1], 0)) >= SLOW_AFTER:
                return False  # an answer that keeps running out of time is not compared again
            gold, pred = self._parse(key[1]), self._parse(key[0])
            before = self.timeouts
            verdict = bool(gold and pred) and bool(self._capped(verify_parsed, gold, pred, default=False))
            if self.timeouts > before:
                for s in key:
                    self._remember(self._slow, s, self._slow.get(s, 0) + 1)
            self._remember(self._verdicts, key, verdict)
        return self._verdicts[key]

    def clusters(self, answers: list[str | None]) -> list[tuple[str, list[int]]]:
        """Groups of equivalent answers (the vote's own grouping), each comparison capped."""
        return clusters(answers, self.equivalent)

    def _parse(self, answer: str) -> tuple:
        if answer not in self._parsed:
            self._remember(self._parsed, answer, self._capped(parse_answer, answer, default=()))
        return self._parsed[answer]

    def _capped(self, fn, *args, default):
        if time.monotonic() >= self.until:
            self.timeouts += 1
            return default
        signal.setitimer(signal.ITIMER_REAL, self.cap)
        try:
            return fn(*args)
        except _Cap:
            self.timeouts += 1
            return default
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    @staticmethod
    def _remember(cache: dict, key, value) -> None:
        if len(cache) >= CACHE_ENTRIES:
            cache.clear()
        cache[key] = value


def _alarm(_signum, _frame):
    raise _Cap


def warm() -> None:
    """One parse and comparison, uncapped, before the worker says it is ready: math-verify's first
    one builds its parsers (about 90 ms on an idle 2-core machine against 7 ms after), and on a busy
    machine that outran a cap, so the first real check after a worker (re)started could count as
    "not equivalent". A failure here is the first call's to report, not a reason not to start."""
    try:
        verify_parsed(parse_answer("\\frac{1}{2}"), parse_answer("0.5"))
    except Exception:  # noqa: BLE001
        pass


def main() -> None:
    _checker.OWN_TIMEOUT_S = None  # this process caps every call itself
    signal.signal(signal.SIGALRM, _alarm)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # nothing but answers goes to the parent's pipe
    warm()
    worker = Worker()
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        try:
            answer = worker.handle(json.loads(line))
        except _Cap:  # the alarm fired between a call's return and its disarm
            answer = {"error": "timeout", "timeouts": 1}
        except Exception as e:  # noqa: BLE001 - the parent treats an error as "no verdict"
            answer = {"error": type(e).__name__}
        out.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
