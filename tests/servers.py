"""Real rise-serve processes for tests: a free 127.0.0.1 port, the shipped model, stopped by PID.
They are forked from a warm parent that has imported the server's modules once (tests/zygote.py;
RISE_TEST_ZYGOTE=0 starts each with `python -m app.cli serve` instead)."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from app.api.launch import ROOT, free_port, start, stop, wait_until_answers

__all__ = ["ROOT", "free_port", "start_forked", "start_server", "stop_server", "wait_for"]


_zygote = []
# The zygote dies when the thread that started it ends (PR_SET_PDEATHSIG is per thread). A test that
# starts a server from a short-lived thread (the bench opens its contenders in `asyncio.to_thread`)
# would leave a zygote that is killed when that thread ends, and the next start could reach it while it
# died ("connection reset by peer"). So it is always started from this one thread, which lives until
# the test process exits.
_starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zygote-starter")


def start_server(env_extra: dict[str, str] | None = None, args: list[str] | None = None, port: int | None = None,
                 wait_ready: bool = True):
    """Start `rise serve`; returns (process, base_url, log_path) once /ready answers 200 (or, with
    wait_ready=False, once /health does)."""
    return start_forked({"RISE_LOG_LEVEL": "info", **(env_extra or {})}, args, port,
                        ready_path="/ready" if wait_ready else "/health")


def start_forked(env_extra: dict[str, str] | None = None, args: list[str] | None = None, port: int | None = None, *,
                 ready_path: str = "/ready", timeout: float = 120, log_name: str = "rise-serve"):
    """`app.api.launch.start`, forked from the warm parent (its signature; tests/bench patches it in)."""
    if os.environ.get("RISE_TEST_ZYGOTE", "1") == "0":
        return start(env_extra, args, port, ready_path=ready_path, timeout=timeout, log_name=log_name)
    from tests.zygote import Zygote

    if _zygote and _zygote[0].proc.poll() is not None:  # it died with the thread that started it
        _zygote.clear()
    if not _zygote:
        _zygote.append(_starter.submit(Zygote).result())
    port = port or free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"{log_name}-{port}.log"
    proc = _zygote[0].fork(["serve", "--port", str(port), *(args or [])], log=log,
                           env={**os.environ, **(env_extra or {})}, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_until_answers(proc, url, log, ready_path, timeout)
    return proc, url, log


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
