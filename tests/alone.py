"""Tests marked `alone` run with no other test running beside them, under pytest-xdist too.

`make test` runs the suite on several xdist workers. A test with a hard latency bound (the 100 ms
of `/health` in tests/api/test_verifiers_arrival.py) must not share the two cores with another
worker's refinements: while it runs, the other workers finish the test they are in and wait.

Two file locks shared by the workers (in the run's base temporary directory) make a readers-writer
lock: every test holds `run.lock` shared, an `alone` test holds it exclusively. Whoever wants the
lock first passes `gate.lock`, and an `alone` test keeps the gate until it is done, so that the
other workers cannot keep it waiting; a file's `alone` tests in a row keep both until the last ends. The lock is taken around a test's whole run (setup, call,
teardown), so a module's server starting or stopping is inside it too; the time spent waiting is
in no test's duration. Without xdist (a plain `pytest` run) nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MARKER = "alone"
WAITED = {"alone": 0.0, "others": 0.0}  # this worker's seconds spent waiting for the locks


def lock_dir(config: pytest.Config) -> Path | None:
    """The folder the workers of this run share (their base temporary directories' parent), or
    None outside xdist."""
    if not hasattr(config, "workerinput") or not config.option.basetemp:
        return None
    return Path(config.option.basetemp).parent


_HELD: list = []  # the gate and run locks that consecutive `alone` tests hold between them


def lonely(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker(MARKER) is not None


@contextlib.contextmanager
def turn(item: pytest.Item, nextitem: pytest.Item | None = None) -> Iterator[None]:
    """Hold the run lock for `item`: exclusively if it is marked `alone`, shared otherwise. An `alone`
    test followed by another (`nextitem`, a file's tests in a row) keeps the lock for it: the other
    workers would otherwise each start one more test in between, and the next `alone` test would wait
    for the longest of them again (the 2026-12-04 run: 40 s of such waits before 26 `alone` tests)."""
    folder = lock_dir(item.config)
    if folder is None:
        yield
        return
    alone = lonely(item)
    if alone and _HELD:
        held = _HELD[:]
        _HELD.clear()
    else:
        gate, run = open(folder / "gate.lock", "a"), open(folder / "run.lock", "a")
        held = [gate, run]
        start = time.monotonic()
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(run, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        WAITED["alone" if alone else "others"] += time.monotonic() - start
    try:
        yield
    finally:
        if alone and lonely(nextitem):
            _HELD[:] = held  # still exclusive, and the gate still closed to the others
        else:
            gate, run = held
            fcntl.flock(run, fcntl.LOCK_UN)
            run.close()
            gate.close()  # (an `alone` test's gate opens here)


def schedule(items: list, slow_first: list[str], root: Path) -> None:
    """Sort the collected items: the files of `slow_first` first (in its order), then the rest, and last
    the files with an `alone` test. An `alone` test waits for every other worker's current test to end,
    and they wait for it: run last, it comes when the long files are done and the others' tests are
    short. Stable, so the order is the same in every xdist worker (xdist requires it)."""
    rank = {name: i for i, name in enumerate(slow_first)}
    lonely = {item.path for item in items if item.get_closest_marker(MARKER)}
    items.sort(key=lambda item: (item.path in lonely, rank.get(item.path.relative_to(root).as_posix(), len(rank))))


class Waits:
    """Prints, at the end of an xdist run, the worker-seconds spent waiting for the locks: the price of
    the `alone` tests (conftest.py puts their files last, when the long files are done)."""

    def __init__(self) -> None:
        self.total = dict.fromkeys(WAITED, 0.0)

    def pytest_sessionfinish(self, session) -> None:
        out = getattr(session.config, "workeroutput", None)
        if out is not None:
            out["alone_waits"] = dict(WAITED)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        for k, v in getattr(node, "workeroutput", {}).get("alone_waits", {}).items():
            self.total[k] += v

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if any(self.total.values()) and not hasattr(terminalreporter.config, "workeroutput"):
            terminalreporter.write_line(f"waiting for `alone` tests (tests/alone.py): {self.total['alone']:.1f} s "
                                        f"before them, {self.total['others']:.1f} s of other tests' while they ran")
