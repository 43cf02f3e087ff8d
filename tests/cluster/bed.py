"""The multi-process test bed (issue 32): rise-serve past one machine, on 127.0.0.1, with real parts.

    clients ──► haproxy "front" (round robin, checks /ready, retries a refused request elsewhere)
                  ├─► rise-serve replica r1 ─┐  --engine openai, traces in one PostgreSQL
                  └─► rise-serve replica r2 ─┤
                                             ▼
                haproxy "fleet" (hashes the X-Session-ID header, consistent hashing, checks /ready)
                  ├─► upstream u1: rise-serve on the shipped model (one plain turn per call, prefix cache)
                  └─► upstream u2

haproxy from Debian's package (`make system-deps`), PostgreSQL as in tests/pg.py. Every process can
be stopped (SIGTERM: drained), killed (SIGKILL) and started again on its port; haproxy's runtime
API (a stats socket) takes a server out of rotation or in. Run alone, it starts the bed and waits:

    .venv/bin/python -m tests.cluster.bed        # prints the URLs; Ctrl-C stops everything
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.api.launch import free_port, spawn, wait_until_answers

SESSION_HEADER = "X-Session-ID"
CHECK = "check inter 500 fall 2 rise 2"

FRONT_CFG = """
global
    maxconn 4096
    stats socket {sock} mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 300s
    timeout server 300s
    timeout queue 60s
    option httpchk GET /ready
    http-check expect status 200
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response 503
frontend {name}
    bind 127.0.0.1:{port}
    default_backend {name}_servers
backend {name}_servers
    {balance}
{servers}
"""


@dataclass
class Proc:
    """One rise-serve process on a fixed port, started again on the same port."""

    name: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log: Path | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        self.proc, _, self.log = spawn(self.env, port=self.port, log_name=f"rise-cluster-{self.name}-{self.starts}")
        self.starts += 1
        wait_until_answers(self.proc, self.url, self.log, "/ready", timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples (those with `labels`) on this process's /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@dataclass
class Haproxy:
    name: str
    port: int
    dir: Path
    balance: str
    servers: list[Proc]
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sock(self) -> Path:
        return self.dir / f"{self.name}.sock"

    def start(self) -> None:
        lines = "\n".join(f"    server {p.name} 127.0.0.1:{p.port} {CHECK}" for p in self.servers)
        cfg = self.dir / f"{self.name}.cfg"
        cfg.write_text(FRONT_CFG.format(sock=self.sock, name=self.name, port=self.port, balance=self.balance,
                                        servers=lines))
        log = (self.dir / f"{self.name}.log").open("w")
        self.proc = subprocess.Popen([shutil.which("haproxy"), "-f", str(cfg), "-db"], stdout=log, stderr=log)
        names = {p.name for p in self.servers}
        if not wait(lambda: {n for n, s in self.states().items() if s == "UP"} == names, 60):
            raise RuntimeError(f"haproxy {self.name} did not see its servers up: {self.states()}")

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.sock))
            s.sendall(line.encode() + b"\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        return out.decode()

    def states(self) -> dict[str, str]:
        """Each server's state as haproxy sees it (UP, DOWN, MAINT, ...)."""
        try:
            rows = self.command("show stat").splitlines()
        except OSError:
            return {}
        head = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            cells = dict(zip(head, row.split(",")))
            if cells.get("svname") not in (None, "FRONTEND", "BACKEND"):
                out[cells["svname"]] = cells["status"].split(" ")[0]
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class Bed:
    """`replica_env` / `upstream_env` add to (or override) each process's environment."""

    replicas: int = 2
    upstreams: int = 2
    replica_env: dict[str, str] = field(default_factory=dict)
    upstream_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rise-cluster-"))
        self.pg = None
        self.db = ""
        self.ups: list[Proc] = []
        self.reps: list[Proc] = []
        self.fleet: Haproxy | None = None
        self.front: Haproxy | None = None

    def start(self) -> "Bed":
        from tests.pg import Postgres

        if not shutil.which("haproxy"):
            raise RuntimeError("haproxy is not installed: `apt-get install haproxy` (make system-deps)")
        self.pg = Postgres()
        self.db = self.pg.new_database()
        up_env = {"RISE_DRAIN_READY_DELAY_S": "1", "RISE_SHUTDOWN_GRACE_S": "15", "RISE_MAX_IN_FLIGHT": "16",
                  **self.upstream_env}
        self.ups = [Proc(f"u{i + 1}", free_port(), up_env) for i in range(self.upstreams)]
        for p in self.ups:
            p.start()
        self.fleet = Haproxy("fleet", free_port(), self.dir, f"balance hdr({SESSION_HEADER})\n    hash-type consistent",
                             self.ups)
        self.fleet.start()
        rep_env = {"RISE_ENGINE": "openai", "RISE_BASE_URL": f"{self.fleet.url}/v1", "RISE_TRACES_URL": self.db,
                   "RISE_DRAIN_READY_DELAY_S": "2", "RISE_SHUTDOWN_GRACE_S": "20", **self.replica_env}
        self.reps = [Proc(f"r{i + 1}", free_port(), rep_env) for i in range(self.replicas)]
        for p in self.reps:
            p.start()
        self.front = Haproxy("front", free_port(), self.dir, "balance roundrobin", self.reps)
        self.front.start()
        return self

    def restart(self, p: Proc, lb: Haproxy) -> int | None:
        """SIGTERM `p` (it drains), start it again, and wait until `lb` sends to it again."""
        code = p.stop()
        p.start()
        if not wait(lambda: lb.states().get(p.name) == "UP", 60):
            raise RuntimeError(f"{lb.name} does not see {p.name} up again: {lb.states()}")
        return code

    def trace_ids(self) -> set[str]:
        import sqlalchemy

        engine = sqlalchemy.create_engine(self.db)
        try:
            with engine.connect() as c:
                return {row[0] for row in c.exec_driver_sql("SELECT id FROM rise_traces")}
        finally:
            engine.dispose()

    def close(self) -> None:
        for lb in (self.front, self.fleet):
            if lb is not None:
                lb.stop()
        for p in self.reps + self.ups:
            p.stop(timeout=60)
        if self.pg is not None:
            self.pg.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Bed":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def wait(predicate, timeout: float, interval: float = 0.2) -> bool:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        try:
            if predicate():
                return True
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(interval)
    return False


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with Bed() as bed:
        print(f"front   {bed.front.url}  (replicas {', '.join(p.url for p in bed.reps)})")
        print(f"fleet   {bed.fleet.url}  (upstreams {', '.join(p.url for p in bed.ups)})")
        print(f"traces  {bed.db}")
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
