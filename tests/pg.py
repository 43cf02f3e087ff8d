"""A real PostgreSQL for the trace tests: Debian's server (`make system-deps` installs it), a
fresh cluster in a temporary directory on a free port, stopped (and restarted) by the tests.
As root the cluster runs as the `postgres` user (initdb refuses root). Where no server can be
started the tests that need it are skipped LOUDLY with the reason.

    .venv/bin/python -m pytest -q -rs tests/traces -k postgres
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.servers import free_port


def _bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


class Postgres:
    """One cluster: `url` for SQLAlchemy, `stop()` / `start()` to fault it, `close()` to remove it."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise RuntimeError("PostgreSQL is not installed (initdb/pg_ctl not found): `apt-get install postgresql`")
        self.dir = Path(tempfile.mkdtemp(prefix="rise-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "pg.log"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb will not run as root: the postgres user runs the cluster
            runuser = shutil.which("runuser")
            if not runuser:
                raise RuntimeError("running as root without runuser: cannot start PostgreSQL as another user")
            shutil.chown(self.dir, "postgres", "postgres")
            os.chmod(self.dir, 0o755)
            self.as_user = [runuser, "-u", "postgres", "--"]
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed: {(r.stderr or r.stdout)[-1000:]}")
        return r

    def running(self) -> bool:
        return self._run([self.pg_ctl, "-D", str(self.data), "status"], check=False).returncode == 0

    def start(self) -> None:
        if self.running():
            return
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c fsync=off -c max_connections=100"
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"], check=False)

    def new_database(self) -> str:
        """The URL of a new, empty database on this cluster."""
        import sqlalchemy

        name = f"t_{uuid.uuid4().hex[:16]}"
        admin = sqlalchemy.create_engine(self.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_postgres() -> Postgres:
    """A running cluster, or pytest.skip saying loudly why none could be started."""
    try:
        return Postgres()
    except (RuntimeError, OSError, KeyError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"POSTGRESQL NOT AVAILABLE, its trace tests did NOT run: {e}")


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass (no fixed sleeps)."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
