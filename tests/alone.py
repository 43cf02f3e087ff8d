"""Tests marked `alone` run with no other test running beside them, under pytest-xdist too.

`make test` runs the suite on several xdist workers. A test with a hard latency bound (the 100 ms
of `/health` in tests/api/test_verifiers_arrival.py) must not share the two cores with another
worker's refinements: while it runs, the other workers finish the test they are in and wait.

Two file locks shared by the workers (in the run's base temporary directory) make a readers-writer
lock: every test holds `run.lock` shared, an `alone` test holds it exclusively. Whoever wants the
lock first passes `gate.lock`, and an `alone` test keeps the gate until it is done, so that the
other workers cannot keep it waiting. The lock is taken around a test's whole run (setup, call,
teardown), so a module's server starting or stopping is inside it too; the time spent waiting is
in no test's duration. Without xdist (a plain `pytest` run) nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

MARKER = "alone"


def lock_dir(config: pytest.Config) -> Path | None:
    """The folder the workers of this run share (their base temporary directories' parent), or
    None outside xdist."""
    if not hasattr(config, "workerinput") or not config.option.basetemp:
        return None
    return Path(config.option.basetemp).parent


@contextlib.contextmanager
def turn(item: pytest.Item) -> Iterator[None]:
    """Hold the run lock for `item`: exclusively if it is marked `alone`, shared otherwise."""
    folder = lock_dir(item.config)
    if folder is None:
        yield
        return
    alone = item.get_closest_marker(MARKER) is not None
    with open(folder / "gate.lock", "a") as gate, open(folder / "run.lock", "a") as run:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(run, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(run, fcntl.LOCK_UN)  # (and the gate, for an `alone` test, when the file closes)
