"""Real rise-serve processes for tests: a free 127.0.0.1 port, the shipped model, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env_extra: dict[str, str] | None = None, args: list[str] | None = None, port: int | None = None,
                 wait_ready: bool = True):
    """Start `rise serve`; returns (process, base_url, log_path) once /ready answers 200 (or, with
    wait_ready=False, once /health does)."""
    port = port or free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"rise-serve-{port}.log"
    env = {**os.environ, "RISE_LOG_LEVEL": "info", **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port), *(args or [])],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ready" if wait_ready else f"{url}/health", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server did not become ready: {log.read_text()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_for(predicate, timeout: float = 60, interval: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    return False
