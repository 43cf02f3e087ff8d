"""Stored refinements (opt-in, `RISE_TRACES_URL`): the store over SQLAlchemy (`store.py`), the
bounded asynchronous writer the server hands traces to (`writer.py`), who gives up rows past the
cap (`retention.py`), what a trace holds (`record.py`) and the export that turns them into
training data (`export.py`, `rise traces export`).

    RISE_TRACES_URL=sqlite:///traces.db rise serve
    rise traces export --url sqlite:///traces.db --out data.jsonl --labelled-only
"""
