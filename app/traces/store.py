"""The trace store over SQLAlchemy Core: an SQLite file on one machine (WAL mode, a busy timeout,
every transaction `BEGIN IMMEDIATE` so that writers queue for the lock instead of failing), or
PostgreSQL shared by replicas. Reads and writes are scoped by key id: with keys on, a key sees
only the traces made with it.

    .venv/bin/python -m pytest -q tests/traces/test_store.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import and_, create_engine, delete, event, func, or_, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from app.traces.retention import fair_cut
from app.traces.schema import metadata, traces

PRUNE_LOCK = 0x72697365_7472  # the advisory lock replicas take turns on to prune one PostgreSQL


def check_url(url: str) -> str:
    """`url` if it is an SQLAlchemy URL the store can use, else ValueError saying why."""
    try:
        parsed = make_url(url)
    except Exception as e:  # noqa: BLE001 - sqlalchemy raises ArgumentError/ValueError
        raise ValueError(f"RISE_TRACES_URL is not an SQLAlchemy URL ({type(e).__name__}): e.g. "
                         "sqlite:////var/lib/rise/traces.db or postgresql+psycopg://user@host/db") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"RISE_TRACES_URL: backend {backend!r} is not supported; use sqlite or postgresql")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError("RISE_TRACES_URL: an SQLite store needs a file (sqlite:///path/traces.db), not memory")
    return url


class TraceStore:
    """Synchronous operations on the table; call them from a thread (the writer's, or
    `asyncio.to_thread`). Errors are SQLAlchemy's (`SQLAlchemyError`)."""

    def __init__(self, url: str, busy_timeout_s: float = 2.0) -> None:
        check_url(url)
        self.url = url
        self.sqlite = make_url(url).get_backend_name() == "sqlite"
        if self.sqlite:
            self.engine = create_engine(url, hide_parameters=True, connect_args={"timeout": busy_timeout_s})
            _sqlite_pragmas(self.engine, busy_timeout_s)
        else:
            self.engine = create_engine(url, hide_parameters=True, pool_pre_ping=True, pool_size=4,
                                        max_overflow=4, pool_timeout=busy_timeout_s,
                                        connect_args={"connect_timeout": max(1, int(busy_timeout_s))})
        self._created = False
        self._file: tuple[int, int] | None = None  # the SQLite file's (device, inode) once created

    def create(self) -> None:
        """The table, if missing (several processes may race to create it: the loser carries on).
        An SQLite file deleted or replaced since (its folder removed, say) is noticed here: the pool
        is dropped and the path opened again, so that writes fail and are counted instead of going
        on into an unlinked file that nobody can read."""
        if self._created and not self._file_moved():
            return
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError:
            if not _table_exists(self.engine):
                raise
        for index in traces.indexes:  # a table an earlier version made lacks the newer indexes
            try:
                index.create(self.engine, checkfirst=True)
            except SQLAlchemyError:
                pass  # another process made it meanwhile; a store that cannot is slower, not wrong
        self._created = True
        if self.sqlite:
            self._file = _file_id(make_url(self.url).database)

    def _file_moved(self) -> bool:
        if not self.sqlite or self._file is None or _file_id(make_url(self.url).database) == self._file:
            return False
        self.engine.dispose()
        self._created, self._file = False, None
        return True

    def close(self) -> None:
        self.engine.dispose()

    def fault(self, error: BaseException) -> str:
        """Why a write failed, as a drop reason. SQLite's messages hide the cause of an I/O error
        ("disk I/O error", "unable to open database file"), so its file system is asked first."""
        if self.sqlite:
            folder = Path(make_url(self.url).database).resolve().parent
            try:
                fs = os.statvfs(folder)
                if fs.f_flag & os.ST_RDONLY or not os.access(folder, os.W_OK):
                    return "readonly"
                if fs.f_bavail * fs.f_frsize < 64 * 1024:
                    return "full"
            except OSError:
                pass
        return classify(error)

    # writes ---------------------------------------------------------------------------------

    def insert(self, rows: list[dict[str, Any]]) -> None:
        self.create()
        with self.engine.begin() as c:
            c.execute(traces.insert(), rows)

    def prune(self, max_rows: int, max_age_s: float, now: float | None = None) -> int:
        """Delete what is older than `max_age_s` (labelled or not); then, beyond `max_rows`, the
        unlabelled rows (no feedback) before any labelled one, each time from the key that holds
        the most of them, its oldest first (`retention.fair_cut`). Replicas pruning one PostgreSQL
        take turns (a transaction-scoped advisory lock), so that none deletes on stale counts;
        SQLite's `BEGIN IMMEDIATE` already serialises them."""
        cutoff = (time.time() if now is None else now) - max_age_s
        self.create()  # a fresh store's idle retention runs before any write
        with self.engine.begin() as c:
            if not self.sqlite:  # a replica stuck mid-prune holds the others up 5 s at most (then: retried)
                c.exec_driver_sql("SET LOCAL lock_timeout = '5s'")
                c.execute(select(func.pg_advisory_xact_lock(PRUNE_LOCK)))
            gone = c.execute(delete(traces).where(traces.c.created < cutoff)).rowcount or 0
            excess = c.execute(select(func.count()).select_from(traces)).scalar_one() - max_rows
            if excess <= 0:
                return gone
            counts = c.execute(select(traces.c.key_id, func.count(), func.count(traces.c.fb_at))
                               .group_by(traces.c.key_id)).all()  # a scan of the (key_id, fb_at) index
            for tier in (False, True):
                if excess <= 0:
                    break
                cut, at_level, left = fair_cut({k: lab if tier else n - lab for k, n, lab in counts}, excess)
                for key in _oldest_first(c, at_level, tier)[:left]:
                    cut[key] = cut.get(key, 0) + 1
                for key, n in sorted(cut.items(), key=lambda kv: (kv[0] is None, str(kv[0]))):
                    gone += _evict(c, key, tier, n)
                    excess -= n
        return gone

    def set_feedback(self, trace_id: str, key_id: str | None, *, rating: int | None, comment: str | None,
                     reference: str | None) -> dict | None:
        """Label a trace; the last feedback wins (it replaces every field of the one before)."""
        self.create()
        with self.engine.begin() as c:
            done = c.execute(update(traces).where(_mine(trace_id, key_id)).values(
                fb_rating=rating, fb_comment=comment, fb_reference=reference, fb_at=time.time())).rowcount
        return self.get(trace_id, key_id) if done else None

    def delete(self, trace_id: str, key_id: str | None) -> bool:
        """Remove the row from the store, not just from view: on SQLite the freed bytes are zeroed
        (`secure_delete`) and the WAL, which still holds the row's earlier pages, is checkpointed
        and truncated."""
        self.create()
        with self.engine.begin() as c:
            gone = bool(c.execute(delete(traces).where(_mine(trace_id, key_id))).rowcount)
        if gone and self.sqlite:
            self._truncate_wal()
        return gone

    def _truncate_wal(self) -> None:
        """`PRAGMA wal_checkpoint(TRUNCATE)` outside any transaction (the pool's BEGIN IMMEDIATE
        would make it fail); best effort: a reader holding an old snapshot leaves the WAL for the
        next checkpoint."""
        raw = self.engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        finally:
            raw.close()

    # reads ----------------------------------------------------------------------------------

    def get(self, trace_id: str, key_id: str | None) -> dict | None:
        self.create()
        with self.engine.begin() as c:
            row = c.execute(select(traces).where(_mine(trace_id, key_id))).mappings().first()
        return dict(row) if row else None

    def page(self, key_id: str | None, limit: int, before: str | None = None) -> tuple[list[dict], bool] | None:
        """Up to `limit` traces, newest first, older than the trace `before` (None when `before`
        names no trace this key may see); and whether there are more."""
        self.create()
        q = select(traces)
        if key_id is not None:
            q = q.where(traces.c.key_id == key_id)
        with self.engine.begin() as c:
            if before is not None:
                mark = c.execute(select(traces.c.created, traces.c.id).where(_mine(before, key_id))).first()
                if mark is None:
                    return None
                q = q.where(or_(traces.c.created < mark.created,
                                and_(traces.c.created == mark.created, traces.c.id < mark.id)))
            rows = c.execute(q.order_by(traces.c.created.desc(), traces.c.id.desc()).limit(limit + 1)).mappings().all()
        return [dict(r) for r in rows[:limit]], len(rows) > limit

    def rows(self, since: float | None = None, batch: int = 500) -> Iterator[dict]:
        """Every trace, oldest first (from `since`, Unix seconds), read in batches."""
        self.create()
        after: tuple[float, str] | None = None
        while True:
            q = select(traces).order_by(traces.c.created, traces.c.id).limit(batch)
            if since is not None:
                q = q.where(traces.c.created >= since)
            if after is not None:
                q = q.where(or_(traces.c.created > after[0], and_(traces.c.created == after[0], traces.c.id > after[1])))
            with self.engine.begin() as c:
                chunk = [dict(r) for r in c.execute(q).mappings().all()]
            yield from chunk
            if len(chunk) < batch:
                return
            after = (chunk[-1]["created"], chunk[-1]["id"])

    def count(self) -> int:
        self.create()
        with self.engine.begin() as c:
            return c.execute(select(func.count()).select_from(traces)).scalar_one()


def classify(error: BaseException) -> str:
    """A drop reason from a database error's text (SQLite's and PostgreSQL's wordings)."""
    text = f"{type(error).__name__} {getattr(error, 'orig', '') or error}".lower()
    if "locked" in text or "busy" in text:
        return "locked"
    if "full" in text or "no space" in text or "could not extend" in text or "file too large" in text:
        return "full"
    if "readonly" in text or "read-only" in text or "permission denied" in text:
        return "readonly"
    if any(s in text for s in ("connect", "connection", "unable to open", "terminating", "shutting down",
                               "server closed", "timeout", "timed out", "starting up")):
        return "unavailable"
    return "error"


def _tier(labelled: bool):
    return traces.c.fb_at.is_not(None) if labelled else traces.c.fb_at.is_(None)


def _of_key(key_id: str | None):
    return traces.c.key_id.is_(None) if key_id is None else traces.c.key_id == key_id


def _evict(c, key_id: str | None, labelled: bool, n: int) -> int:
    """Delete this key's `n` oldest rows of the tier. The tier is checked again on the row itself,
    so that a row labelled meanwhile (PostgreSQL re-checks an updated row) is not deleted."""
    order = (traces.c.created,) if labelled else (traces.c.fb_at, traces.c.created)  # NULL, then the index's order
    oldest = select(traces.c.id).where(_of_key(key_id), _tier(labelled)).order_by(*order).limit(n).scalar_subquery()
    return c.execute(delete(traces).where(traces.c.id.in_(oldest), _tier(labelled))).rowcount or 0


def _oldest_first(c, key_ids: list, labelled: bool) -> list:
    """`key_ids` ordered by their oldest row of the tier (a tie at the cut goes to the key that
    has held a row longest)."""
    if not key_ids:
        return []
    named = [k for k in key_ids if k is not None]
    who = or_(traces.c.key_id.in_(named), *([traces.c.key_id.is_(None)] if None in key_ids else []))
    rows = c.execute(select(traces.c.key_id, func.min(traces.c.created)).where(who, _tier(labelled))
                     .group_by(traces.c.key_id)).all()
    return [k for k, _ in sorted(rows, key=lambda r: (r[1], r[0] is None, str(r[0])))]


def _mine(trace_id: str, key_id: str | None):
    """The trace with this id, if `key_id` (when keys are on) made it."""
    cond = traces.c.id == trace_id
    return cond if key_id is None else and_(cond, traces.c.key_id == key_id)


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _table_exists(engine: Engine) -> bool:
    from sqlalchemy import inspect

    return inspect(engine).has_table(traces.name)


def _sqlite_pragmas(engine: Engine, busy_timeout_s: float) -> None:
    """WAL (readers never block the writer, and several processes can share the file), a busy
    timeout, and `BEGIN IMMEDIATE`: a transaction takes the write lock at its start, waiting up
    to the busy timeout, instead of failing when a read turns into a write."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # SQLAlchemy's events below say when transactions begin
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cur.execute("PRAGMA secure_delete=ON")  # a deleted trace's bytes are overwritten, not just unlinked
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        except Exception:  # noqa: BLE001 - a read-only file still reads; writes report the fault
            pass
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
