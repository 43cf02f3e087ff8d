"""Real rise-serve processes for tests: a free 127.0.0.1 port, the shipped model, stopped by PID."""

from __future__ import annotations

import time

import httpx

from app.api.launch import ROOT, free_port, start, stop

__all__ = ["ROOT", "free_port", "start_server", "stop_server", "wait_for"]


def start_server(env_extra: dict[str, str] | None = None, args: list[str] | None = None, port: int | None = None,
                 wait_ready: bool = True):
    """Start `rise serve`; returns (process, base_url, log_path) once /ready answers 200 (or, with
    wait_ready=False, once /health does)."""
    return start({"RISE_LOG_LEVEL": "info", **(env_extra or {})}, args, port,
                 ready_path="/ready" if wait_ready else "/health")


def stop_server(proc) -> int:
    return stop(proc)


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
