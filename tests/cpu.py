"""CPU seconds per test file, summed over the xdist workers, printed at the end of every run beside
pytest's `--durations` (wall time). The suite is CPU-bound on a 2-core machine, so its wall time is
about its CPU seconds over the cores: this table says where they go.

A file's CPU is its tests' own (the worker's user + system time) plus that of every process they
started and reaped: servers, engines and their spawned children, trainers, `accelerate launch`.
A module's or the session's fixtures count in the test whose teardown stops them.

    .venv/bin/python -m pytest -q -n 3 --dist loadfile tests   # "CPU seconds by test file" at the end
    RISE_TEST_CPU_JSON=cpu.json .venv/bin/python -m pytest ...  # and every file's and test's in cpu.json,
                                                                # with every file's wall seconds, and
                                                                # when each worker ran it (timeline)
"""

from __future__ import annotations

import json
import os
import resource
from collections import defaultdict

import pytest

TOP = 10


def cpu_seconds() -> float:
    """This process's CPU and that of its reaped children (and theirs, where they reaped them)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class CPUByFile:
    def __init__(self) -> None:
        self.by_file: dict[str, float] = defaultdict(float)
        self.by_test: dict[str, float] = defaultdict(float)  # setup, call and teardown together
        self.wall_by_file: dict[str, float] = defaultdict(float)  # its tests' setup, call and teardown durations
        self.spans: dict[tuple[str, str], tuple[float, float]] = {}  # (worker, file): its first start, last stop

    def pytest_runtest_logreport(self, report) -> None:
        """Every phase's wall time (in the xdist controller: every worker's reports), for the order of
        conftest.py's SLOW_FIRST, and when each worker ran each file (the JSON's timeline)."""
        path = report.nodeid.split("::")[0]
        self.wall_by_file[path] += report.duration
        node = getattr(report, "node", None)
        worker = node.gateway.id if node is not None else "main"
        start, stop = self.spans.get((worker, path), (report.start, report.stop))
        self.spans[(worker, path)] = (min(start, report.start), max(stop, report.stop))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        start = cpu_seconds()
        try:
            return (yield)
        finally:
            spent = cpu_seconds() - start
            self.by_file[item.nodeid.split("::")[0]] += spent
            self.by_test[item.nodeid] += spent

    def pytest_sessionfinish(self, session) -> None:
        out = getattr(session.config, "workeroutput", None)  # set in an xdist worker: sent to the controller
        if out is not None:
            out["cpu_by_file"], out["cpu_by_test"] = dict(self.by_file), dict(self.by_test)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error) -> None:
        for path, seconds in getattr(node, "workeroutput", {}).get("cpu_by_file", {}).items():
            self.by_file[path] += seconds
        for nodeid, seconds in getattr(node, "workeroutput", {}).get("cpu_by_test", {}).items():
            self.by_test[nodeid] += seconds

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.by_file or hasattr(terminalreporter.config, "workeroutput"):
            return
        ranked = sorted(self.by_file.items(), key=lambda kv: -kv[1])
        if os.environ.get("RISE_TEST_CPU_JSON"):
            with open(os.environ["RISE_TEST_CPU_JSON"], "w") as f:
                tests = sorted(self.by_test.items(), key=lambda kv: -kv[1])
                wall = sorted(self.wall_by_file.items(), key=lambda kv: -kv[1])
                t0 = min((start for start, _ in self.spans.values()), default=0.0)
                timeline = sorted(([worker, path, round(start - t0, 2), round(stop - t0, 2)]
                                   for (worker, path), (start, stop) in self.spans.items()), key=lambda row: row[2])
                json.dump({"files": dict(ranked), "tests": dict(tests), "wall_by_file": dict(wall),
                           "timeline": timeline}, f, indent=1)
        total = sum(self.by_file.values())
        terminalreporter.write_sep("=", f"CPU seconds by test file (top {TOP} of {len(ranked)}; all: {total:.0f} s)")
        for path, seconds in ranked[:TOP]:
            terminalreporter.write_line(f"{seconds:8.1f} s  {100 * seconds / total:4.1f}%  {path}")
