"""The server's trace writer from `Settings`, its drops and writes counted in `app/metrics.py`.
Nothing connects to the database here: a store that is down at start-up only makes `/ready`
say `degraded` once writes fail.

    RISE_TRACES_URL=sqlite:///traces.db rise serve
"""

from __future__ import annotations

from app import metrics
from app.config import Settings
from app.traces.store import TraceStore
from app.traces.writer import TraceWriter


def start_writer(settings: Settings) -> TraceWriter | None:
    """The running writer, or None when traces are off (RISE_TRACES_URL unset)."""
    if not settings.traces_url:
        return None
    store = TraceStore(settings.traces_url, busy_timeout_s=max(0.1, min(2.0, settings.traces_retry_s)))
    writer = TraceWriter(store, cap=settings.traces_queue, retry_s=settings.traces_retry_s,
                         max_rows=settings.traces_max_rows, max_age_s=settings.traces_max_age_s,
                         on_drop=lambda reason, n: metrics.TRACES_DROPPED.labels(reason).inc(n),
                         on_written=metrics.TRACES_WRITTEN.inc)
    writer.start()
    return writer
