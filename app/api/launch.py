"""`rise serve` as a child process: a free port, start, wait until it answers, stop with SIGTERM.
Used by `rise bench` (the served contenders) and by the tests that drive a real server.

    python -c "from app.api.launch import start, stop; p, url, log = start(); print(url); stop(p)"
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(env_extra: dict[str, str] | None = None, args: list[str] | None = None, port: int | None = None, *,
          log_name: str = "rise-serve", cwd: Path = ROOT, command: list[str] | None = None,
          env: dict[str, str] | None = None):
    """Start `rise serve` (or `command`, e.g. an installed `rise serve`) without waiting; returns
    (process, base URL, log path), stdout and stderr both going to the log. The environment is
    `env` (default: this process's) plus `env_extra`."""
    port = port or free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"{log_name}-{port}.log"
    command = command or [sys.executable, "-m", "app.cli", "serve"]
    with log.open("w") as out:
        proc = subprocess.Popen([*command, "--port", str(port), *(args or [])], cwd=cwd,
                                env={**(os.environ if env is None else env), **(env_extra or {})}, stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


def start(env_extra: dict[str, str] | None = None, args: list[str] | None = None, port: int | None = None, *,
          ready_path: str = "/ready", timeout: float = 120, log_name: str = "rise-serve"):
    """Start `rise serve` (environment: this process's plus `env_extra`); returns (process, base URL,
    log path) once `ready_path` answers 200. Raises RuntimeError with the log's tail otherwise."""
    proc, url, log = spawn(env_extra, args, port, log_name=log_name)
    wait_until_answers(proc, url, log, ready_path, timeout)
    return proc, url, log


def wait_until_answers(proc: subprocess.Popen, url: str, log: Path, path: str = "/ready", timeout: float = 120) -> None:
    """Wait until `url + path` answers 200; RuntimeError with the log's tail if the server exits or
    the time runs out (then it is killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"server did not become ready: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen, grace: float = 30) -> int:
    """SIGTERM (the server drains), then SIGKILL after `grace` seconds; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
