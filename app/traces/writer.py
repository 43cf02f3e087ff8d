"""The bounded asynchronous writer between serving and the store: a refinement's trace is handed
over with `submit` (never blocks, never raises) and written by one thread, in batches.

- The queue has a cap: when full the newest trace is dropped and counted (`queue_full`).
- A failing write (locked, full, read-only, the database down) is retried with backoff for up to
  `retry_s`, then the batch is dropped and counted with its reason: `locked`, `full`, `readonly`,
  `unavailable`, `error`. Drops are logged at most once a minute, never the trace's content.
- `health()` says `ok` or `degraded` (the last write failed, or traces were dropped in the last
  minute) for `/ready`, which stays 200: serving never depends on the store.
- Retention (`max_rows`, `max_age_s`) is enforced after every batch, and once a minute when idle.
- `wait_written(id)` lets a read on this process wait for its own pending write; `flush()` waits
  for everything submitted so far (stored or dropped).

    .venv/bin/python -m pytest -q tests/traces/test_writer.py
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from typing import Callable

from app.traces.store import TraceStore

log = logging.getLogger("rise.traces")

LOG_EVERY_S = 60.0
BATCH = 64
DEGRADED_FOR_S = 60.0  # a drop keeps /ready's traces status `degraded` this long


class TraceWriter:
    def __init__(self, store: TraceStore, *, cap: int = 1000, retry_s: float = 10.0, max_rows: int = 100_000,
                 max_age_s: float = 30 * 86400, on_drop: Callable[[str, int], None] | None = None,
                 on_written: Callable[[int], None] | None = None) -> None:
        self.store, self.retry_s, self.max_rows, self.max_age_s = store, retry_s, max_rows, max_age_s
        self.on_drop, self.on_written = on_drop, on_written
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=cap)
        self._lock = threading.Condition()
        self._pending: set[str] = set()
        self._submitted = self._settled = 0
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped: Counter[str] = Counter()
        self._unlogged: Counter[str] = Counter()
        self._last_log = 0.0
        self._last_drop = 0.0
        self._failing: str | None = None  # the reason the last write failed, until one succeeds
        self.written = 0
        self._last_prune = time.monotonic()

    # the event loop's side ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rise-trace-writer", daemon=True)
        self._thread.start()

    def submit(self, row: dict) -> bool:
        """Queue a trace for writing; False (counted as `queue_full`) when the queue is full."""
        with self._lock:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self._drop("queue_full", 1)
                return False
            self._pending.add(row["id"])
            self._submitted += 1
        return True

    def pending(self, trace_id: str) -> bool:
        with self._lock:
            return trace_id in self._pending

    def wait_written(self, trace_id: str, timeout: float) -> bool:
        """Wait until `trace_id` is no longer waiting to be written (stored or dropped)."""
        with self._lock:
            return self._lock.wait_for(lambda: trace_id not in self._pending, timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every trace submitted so far is stored or dropped."""
        with self._lock:
            target = self._submitted
            return self._lock.wait_for(lambda: self._settled >= target, timeout)

    def health(self) -> dict:
        recent = time.monotonic() - self._last_drop < DEGRADED_FOR_S if self._last_drop else False
        status = "degraded" if self._failing or recent else "ok"
        out = {"status": status, "queued": self._queue.qsize(), "dropped": dict(self.dropped)}
        if self._failing:
            out["reason"] = self._failing
        return out

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (for up to `timeout` seconds), then stop; what is left is dropped."""
        self.flush(timeout)
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.retry_s, 1.0) + 5)
        leftover = []
        while True:
            try:
                leftover.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if leftover:
            self._drop("shutdown", len(leftover))
            self._settle(leftover)
        self._report(force=True)
        self.store.close()

    # the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                batch = [self._queue.get(timeout=0.5)]
            except queue.Empty:
                self._report()
                self._idle_prune()
                continue
            while len(batch) < BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(batch)
            finally:
                self._settle(batch)
            self._report()

    def _write(self, batch: list[dict]) -> None:
        until, delay = time.monotonic() + self.retry_s, 0.05
        while True:
            try:
                self.store.insert(batch)
                break
            except Exception as e:  # noqa: BLE001 - every failure is a counted drop, never a crash
                reason = self.store.fault(e)
                if self._failing != reason:
                    log.warning("trace store write failed (%s): %s; retrying for up to %g s", reason,
                                _summary(e), self.retry_s)
                self._failing = reason
                if reason == "error" or self._closing.is_set() or time.monotonic() + delay > until:
                    self._drop(reason, len(batch))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        if self._failing:
            log.warning("trace store writes again (after %s)", self._failing)
        self._failing = None
        self.written += len(batch)
        if self.on_written:
            self.on_written(len(batch))
        try:
            self._last_prune = time.monotonic()
            self.store.prune(self.max_rows, self.max_age_s)
        except Exception as e:  # noqa: BLE001 - the rows are stored; the next batch prunes again
            log.debug("trace retention failed: %s", _summary(e))

    def _idle_prune(self) -> None:
        """Without traffic, rows still age out: retention runs at least once a minute."""
        if time.monotonic() - self._last_prune < LOG_EVERY_S:
            return
        self._last_prune = time.monotonic()
        try:
            self.store.prune(self.max_rows, self.max_age_s)
        except Exception as e:  # noqa: BLE001 - a store that is down is reported by the writes
            log.debug("trace retention failed: %s", _summary(e))

    def _settle(self, batch: list[dict]) -> None:
        with self._lock:
            for row in batch:
                self._pending.discard(row["id"])
            self._settled += len(batch)
            self._lock.notify_all()

    def _drop(self, reason: str, n: int) -> None:
        with self._lock:
            self.dropped[reason] += n
            self._unlogged[reason] += n
            self._last_drop = time.monotonic()
        if self.on_drop:
            self.on_drop(reason, n)

    def _report(self, force: bool = False) -> None:
        """One log line for the drops since the last one, at most once a minute."""
        with self._lock:
            if not self._unlogged or (not force and time.monotonic() - self._last_log < LOG_EVERY_S):
                return
            self._last_log = time.monotonic()
            drops, self._unlogged = dict(self._unlogged), Counter()
        log.warning("traces dropped since the last report: %s (serving is not affected)",
                    ", ".join(f"{k}={v}" for k, v in sorted(drops.items())), extra={"fields": {"dropped": drops}})


def _summary(error: BaseException) -> str:
    """The error's type and first line, never its SQL or parameters."""
    orig = getattr(error, "orig", None) or error
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first[:200]}"
