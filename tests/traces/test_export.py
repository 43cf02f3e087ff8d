"""`rise traces export`: every trace or only labelled ones, the reference only in a labelled
export, `--since`, and bad arguments refused (exit 2) before the store is touched.

    .venv/bin/python -m pytest -q tests/traces/test_export.py
"""

import json
import subprocess
import sys
import time

import pytest

from app.traces.store import TraceStore
from tests.servers import ROOT
from tests.traces.rows import row


def rise(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "traces", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def filled(store_url):
    s = TraceStore(store_url)
    now = time.time()
    rows = [row(reference="4242", keep=True, created=now - 3600), row(created=now - 60), row(created=now)]
    s.insert(rows)
    s.set_feedback(rows[1]["id"], None, rating=1, comment="ok", reference=None)
    s.close()
    return store_url, rows, now


def test_export_all_has_no_reference(filled, tmp_path):
    url, rows, _ = filled
    out = tmp_path / "all.jsonl"
    r = rise("export", "--url", url, "--out", str(out))
    assert r.returncode == 0 and "3 traces" in r.stdout
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["id"] for x in lines] == [r["id"] for r in rows] and "4242" not in out.read_text()
    assert lines[0]["turns"][0]["text"] and lines[1]["feedback"]["rating"] == 1


def test_labelled_only_carries_the_reference(filled, tmp_path):
    url, rows, now = filled
    out = tmp_path / "labelled.jsonl"
    assert rise("export", "--url", url, "--out", str(out), "--labelled-only").returncode == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["id"], x["reference"]) for x in lines] == [(rows[0]["id"], "4242"), (rows[1]["id"], None)]
    recent = tmp_path / "recent.jsonl"
    assert rise("export", "--url", url, "--out", str(recent), "--labelled-only", "--since", str(now - 600)).returncode == 0
    assert [json.loads(x)["id"] for x in recent.read_text().splitlines()] == [rows[1]["id"]]


@pytest.mark.parametrize("args,message", [
    (["export", "--url", "nope", "--out", "x.jsonl"], "not an SQLAlchemy URL"),
    (["export", "--url", "sqlite:////nonexistent/t.db", "--out", "x.jsonl"], "no SQLite store"),
    (["export", "--url", "STORE", "--out", "/nonexistent/dir/x.jsonl"], "does not exist"),
    (["export", "--url", "STORE", "--out", "/tmp"], "is a directory"),
    (["export", "--url", "STORE", "--out", "x.jsonl", "--since", "yesterday"], "ISO 8601"),
    (["import"], "usage"),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, args, message):
    store = f"sqlite:///{tmp_path / 't.db'}"
    TraceStore(store).create()
    r = rise(*[store if a == "STORE" else a for a in args])
    assert r.returncode == 2 and message in r.stderr, r.stderr
