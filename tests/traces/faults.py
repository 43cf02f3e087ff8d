"""Real faults for the trace store: an SQLite file locked by another writer, a small tmpfs that
fills or turns read-only (mounting needs root: elsewhere a read-only directory by permissions,
and the tests that need a mount skip loudly).

    .venv/bin/python -m pytest -q -rs tests/traces/test_writer.py
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import tempfile
from pathlib import Path

import pytest


@contextlib.contextmanager
def locked(db: Path):
    """Another process's writer holding SQLite's write lock (BEGIN EXCLUSIVE) until the block ends."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


class Tmpfs:
    """A tmpfs of `size_kb` KiB: `fill()` leaves no space, `readonly()` remounts it read-only."""

    def __init__(self, size_kb: int = 1024) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="rise-tmpfs-"))
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0777", "tmpfs", str(self.path)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            os.rmdir(self.path)
            pytest.skip(f"CANNOT MOUNT A TMPFS here (needs root; {r.stderr.strip()[:200]}): the full-disk and "
                        "read-only-filesystem trace tests did NOT run")

    def fill(self) -> None:
        with open(self.path / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()

    def unfill(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)

    def readonly(self, on: bool = True) -> None:
        subprocess.run(["mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path)], check=True)

    def close(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
        with contextlib.suppress(OSError):
            os.rmdir(self.path)
