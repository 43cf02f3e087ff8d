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
- A stream tells its trace's id before its refinement ends: `reserve` makes the id pending from
  then (`release` it when no trace comes), so that a DELETE meanwhile wins there too.
- A trace still pending can be deleted (`forget`: it is left out of its batch, or deleted right
  after the insert, before it stops being pending) and labelled (`hold_feedback`: the label goes
  into the row, or is applied right after the insert). Only this process sees its pending writes.

    .venv/bin/python -m pytest -q tests/traces/test_writer.py
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from functools import partial
from typing import Callable

from app.traces.store import TraceStore

log = logging.getLogger("rise.traces")

LOG_EVERY_S = 60.0
BATCH = 64
DEGRADED_FOR_S = 60.0  # a drop keeps /ready's traces status `degraded` this long
GONE_KEPT = 10_000  # ids deleted while pending, remembered so that a retried DELETE answers 200


class TraceWriter:
    def __init__(self, store: TraceStore, *, cap: int = 1000, retry_s: float = 10.0, max_rows: int = 100_000,
                 max_age_s: float = 30 * 86400, on_drop: Callable[[str, int], None] | None = None,
                 on_written: Callable[[int], None] | None = None) -> None:
        self.store, self.retry_s, self.max_rows, self.max_age_s = store, retry_s, max_rows, max_age_s
        self.on_drop, self.on_written = on_drop, on_written
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=cap)
        self._lock = threading.Condition()
        self._pending: dict[str, str | None] = {}  # id -> the key id that made it
        self._forgotten: set[str] = set()  # pending ids deleted meanwhile: never to stay stored
        self._held: dict[str, dict] = {}  # pending id -> feedback to apply once it is written
        self._reserved: set[str] = set()  # pending ids whose trace is not submitted yet (`reserve`)
        self._gone: OrderedDict[str, str | None] = OrderedDict()
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
        self._prune_failing = False

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
                self._unreserve(row["id"])
                return False
            self._reserved.discard(row["id"])
            self._pending[row["id"]] = row.get("key_id")
            self._submitted += 1
        return True

    def reserve(self, trace_id: str, key_id: str | None) -> None:
        """A trace to come, its id already told to the client (a stream's first event): pending
        from now, for this key; `submit` or `release` ends that."""
        with self._lock:
            if trace_id not in self._pending:
                self._reserved.add(trace_id)
                self._pending[trace_id] = key_id

    def release(self, trace_id: str) -> None:
        """No trace comes for a `reserve`d id (the refinement failed, or its client left): no longer
        pending (a DELETE meanwhile: `gone`). Nothing once the trace was submitted."""
        with self._lock:
            self._unreserve(trace_id)

    def _unreserve(self, trace_id: str) -> None:
        if trace_id not in self._reserved:
            return
        self._reserved.discard(trace_id)
        key = self._pending.pop(trace_id, None)
        self._held.pop(trace_id, None)
        if trace_id in self._forgotten:
            self._forgotten.discard(trace_id)
            self._remember_gone(trace_id, key)
        self._lock.notify_all()

    def pending(self, trace_id: str, key_id: str | None = None) -> bool:
        """Whether this process is still writing `trace_id` for this key (any key: None)."""
        with self._lock:
            return self._owns(trace_id, key_id)

    def forget(self, trace_id: str, key_id: str | None) -> bool:
        """DELETE of a pending trace: it is never written, or deleted right after its insert, before
        it stops being pending; `gone` then says so. False when this process holds no pending
        write of it for this key (the store decides)."""
        with self._lock:
            if not self._owns(trace_id, key_id):
                return False
            self._forgotten.add(trace_id)
            self._held.pop(trace_id, None)
            return True

    def hold_feedback(self, trace_id: str, key_id: str | None, values: dict) -> bool:
        """Feedback (`rating`, `comment`, `reference`) for a pending trace: it goes into the row, or
        is applied right after the insert (the last one held wins). False as for `forget`."""
        with self._lock:
            if not self._owns(trace_id, key_id):
                return False
            if trace_id not in self._forgotten:
                self._held[trace_id] = {**values, "at": time.time()}
            return True

    def gone(self, trace_id: str, key_id: str | None) -> bool:
        """Whether `trace_id` was deleted while pending (not stored, or deleted after it was)."""
        with self._lock:
            return trace_id in self._gone and (key_id is None or self._gone[trace_id] == key_id)

    def _owns(self, trace_id: str, key_id: str | None) -> bool:
        return trace_id in self._pending and (key_id is None or self._pending[trace_id] == key_id)

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
            self._settle(leftover, set())
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
            stored: set[str] = set()
            try:
                stored = self._write(batch)
            finally:
                self._settle(batch, stored, prune=bool(stored))
            self._report()

    def _write(self, batch: list[dict]) -> set[str]:
        """Insert the batch (less what was deleted meanwhile), retrying; the ids stored."""
        until, delay = time.monotonic() + self.retry_s, 0.05
        while True:
            batch = self._take(batch)
            if not batch:
                return set()
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
                    return set()
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        if self._failing:
            log.warning("trace store writes again (after %s)", self._failing)
        self._failing = None
        self.written += len(batch)
        if self.on_written:
            self.on_written(len(batch))
        return {row["id"] for row in batch}

    def _take(self, rows: list[dict]) -> list[dict]:
        """The rows still to insert: one deleted while pending is left out, held feedback goes in."""
        with self._lock:
            out = []
            for row in rows:
                if row["id"] in self._forgotten:
                    continue
                fb = self._held.pop(row["id"], None)
                out.append(row if fb is None else {**row, "fb_rating": fb["rating"], "fb_comment": fb["comment"],
                                                   "fb_reference": fb["reference"], "fb_at": fb["at"]})
            return out

    def _settle(self, batch: list[dict], stored: set[str], prune: bool = False) -> None:
        """The batch is no longer pending. Before that, a stored trace deleted meanwhile is deleted
        from the store, held feedback applied and (`prune`) retention enforced, so that a route
        waiting on it (or `flush`) finds the outcome in the store."""
        ids, in_store, kept = [row["id"] for row in batch], set(stored), set()
        while True:
            with self._lock:
                doomed = [i for i in ids if i in in_store and i in self._forgotten and i not in kept]
                labels = {i: self._held.pop(i) for i in ids if i in in_store and i in self._held}
                if not doomed and not labels and not prune:
                    for i in ids:
                        key = self._pending.pop(i, None)
                        self._held.pop(i, None)
                        if i in self._forgotten:
                            self._forgotten.discard(i)
                            if i not in in_store:  # never written, or deleted after it was
                                self._remember_gone(i, key)
                    self._settled += len(ids)
                    self._lock.notify_all()
                    return
            for i in doomed:
                if self._retrying(partial(self.store.delete, i, None)):
                    in_store.discard(i)
                else:
                    kept.add(i)  # still stored: a DELETE retried later removes it from the store itself
            for i, fb in labels.items():
                self._retrying(partial(self.store.set_feedback, i, None, rating=fb["rating"], comment=fb["comment"],
                                       reference=fb["reference"]))
            if prune and not doomed and not labels:  # after the labels (a labelled row is kept longer)
                self._prune()
                prune = False

    def _remember_gone(self, trace_id: str, key_id: str | None) -> None:
        self._gone[trace_id] = key_id
        while len(self._gone) > GONE_KEPT:
            self._gone.popitem(last=False)

    def _retrying(self, op: Callable[[], object]) -> bool:
        """A follow-up on the store (a delete, a label), retried like a write; False if it never
        succeeded (logged: the call that asked for it finds the trace as the store has it)."""
        until, delay = time.monotonic() + self.retry_s, 0.05
        while True:
            try:
                op()
                return True
            except Exception as e:  # noqa: BLE001 - never a crash of the writer
                if self.store.fault(e) == "error" or self._closing.is_set() or time.monotonic() + delay > until:
                    log.warning("trace store follow-up of a pending trace failed: %s", _summary(e))
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _idle_prune(self) -> None:
        """Without traffic, rows still age out: retention runs at least once a minute."""
        if time.monotonic() - self._last_prune >= LOG_EVERY_S:
            self._prune()

    def _prune(self) -> None:
        """Retention; a failure is logged once until it works again (the next batch retries)."""
        self._last_prune = time.monotonic()
        try:
            self.store.prune(self.max_rows, self.max_age_s)
        except Exception as e:  # noqa: BLE001 - the rows are stored; the next batch prunes again
            if not self._prune_failing:
                log.warning("trace retention failed: %s; retried after the next batch", _summary(e))
            self._prune_failing = True
        else:
            self._prune_failing = False

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
