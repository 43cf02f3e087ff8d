"""`rise serve` as a process: a bad address is a message and exit 2, SIGTERM at any moment (even
while the model is still loading) is exit 0, never an abort (status 134).

    .venv/bin/python -m pytest -q tests/api/test_serve_process.py
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest

from app.api.launch import ROOT, spawn, stop, wait_until_answers


def finish(proc: subprocess.Popen, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_port_in_use_is_exit_2_with_a_message():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc, _, log = spawn(port=taken.getsockname()[1], log_name="rise-port-in-use")
        assert finish(proc) == 2, log.read_text()[-2000:]
    text = log.read_text()
    assert "cannot listen on 127.0.0.1" in text and "in use" in text and "Traceback" not in text


@pytest.mark.parametrize("host", ["256.1.1.1", "no-such-host.invalid"])
def test_bad_host_is_exit_2_with_a_message(host):
    proc, _, log = spawn(args=["--host", host], log_name="rise-bad-host")
    assert finish(proc) == 2, log.read_text()[-2000:]
    text = log.read_text()
    assert f"--host {host!r}" in text and "Traceback" not in text


@pytest.mark.parametrize("after_s", [0.2, 1.0, 2.0])
def test_sigterm_while_the_model_loads_is_exit_0(after_s):
    proc, _, log = spawn(log_name="rise-early-sigterm")
    time.sleep(after_s)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 0, log.read_text()[-2000:]
    assert "terminate called" not in log.read_text()


def test_sigterm_once_ready_is_exit_0():
    proc, url, log = spawn(log_name="rise-ready-sigterm")
    wait_until_answers(proc, url, log, "/ready", timeout=120)
    assert stop(proc) == 0, log.read_text()[-2000:]
    assert "Finished server process" in log.read_text()


UVICORN_EXITS_3 = """
from app.api.process import run_server

class Config:
    def get_loop_factory(self):
        return None

class Server:
    config = Config()

    async def serve(self):
        raise SystemExit(3)

raise SystemExit(run_server(Server()))
"""


def test_uvicorn_failing_to_listen_after_the_check_is_exit_2():
    """The port can be taken between the check and uvicorn's bind: uvicorn logs why and exits 3.
    (In its own process: run_server may leave through os._exit, which would end this one.)"""
    p = subprocess.run([sys.executable, "-c", UVICORN_EXITS_3], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
