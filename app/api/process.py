"""The `rise serve` process around uvicorn: the address is checked before anything loads, SIGTERM
is a clean exit 0 at any moment (even while the model is still loading), and the process never
waits for, or dies with, a model load it no longer needs.

    python -m app.cli serve --port 8000        # SIGTERM (or `kill PID`) -> exit status 0

Why: the model loads on a worker thread (`asyncio.to_thread`). uvicorn's runner waits for that
thread at exit; the engine it then builds (and nobody closes) keeps torch busy on its own thread,
and the interpreter's shutdown meets it mid-work: "terminate called without an active exception",
status 134. Here the event loop is closed without waiting for its executor, and a process whose
load was abandoned (or that still has threads) leaves through `os._exit` once the logs are
flushed; a normal shutdown returns and exits as usual (atexit handlers run).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time


STARTUP_FAILURE = 3  # uvicorn's exit status when it cannot start (uvicorn.config.STARTUP_FAILURE)


class AddressError(Exception):
    """The host does not resolve or the port cannot be bound: a message for the user."""


def check_address(host: str, port: int) -> None:
    """Resolve `host` and bind `port` on each of its addresses (then let go), as uvicorn will."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise AddressError(f"--host {host!r} is not an address this machine has "
                           f"({getattr(e, 'strerror', None) or e})") from None
    seen = set()
    for family, kind, proto, _, address in infos:
        if (family, address) in seen:
            continue
        seen.add((family, address))
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's create_server
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind(address)
            except OSError as e:
                raise AddressError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


def exit_on_sigterm_until_serving() -> None:
    """Until uvicorn takes the signals over, SIGTERM ends the process at once with status 0
    (nothing is served yet, so there is nothing to drain)."""
    signal.signal(signal.SIGTERM, lambda *_: _exit_now(0))


def run_server(server, engine_loaded=lambda: True) -> int:
    """Run a uvicorn.Server to its end; returns its exit status (0 after SIGTERM). When the engine
    never loaded (its load was abandoned) or a thread outlives the server, the process exits here
    instead of returning: the interpreter's own shutdown would meet those threads mid-work."""
    factory = server.config.get_loop_factory()
    loop = factory() if factory is not None else asyncio.new_event_loop()
    status = 0
    try:
        loop.run_until_complete(server.serve())
    except SystemExit as e:  # uvicorn cannot listen after all (the port was taken since the check): it logged why
        status = 2 if e.code == STARTUP_FAILURE else e.code if isinstance(e.code, int) else 1
    except KeyboardInterrupt:  # SIGINT, which uvicorn raises again once it has drained
        status = 128 + signal.SIGINT
    finally:
        _cancel_tasks(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()  # its executor is shut down without waiting for a load in progress
    if not engine_loaded() or _lingering_threads():
        _exit_now(status)
    return status


def _lingering_threads(wait_s: float = 2.0) -> list[threading.Thread]:
    """Non-daemon threads still alive after up to `wait_s` (idle executor workers end within
    milliseconds; daemon threads never hold the interpreter's exit)."""
    deadline = time.monotonic() + wait_s
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    for t in others:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in others if t.is_alive()]


def _cancel_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def _exit_now(status: int) -> None:
    """Flush what the user should see, then leave without the interpreter's shutdown."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
