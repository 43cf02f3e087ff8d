"""tests/zygote.py, the warm parent the tests fork their servers from: it dies with the process that
started it, so that none outlives a run (each held 550 MB and the run's stdout: a `pytest ... | grep`
never ended), and a dead one is replaced.

    .venv/bin/python -m pytest -q tests/test_zygote.py
"""

import subprocess
import sys
import threading
import time

from tests import servers
from tests.servers import ROOT

STARTS_ONE = """
from tests.zygote import Zygote
z = Zygote()
print(z.proc.pid, flush=True)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_zygote_dies_with_the_process_that_started_it():
    r = subprocess.run([sys.executable, "-c", STARTS_ONE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    pid = int(r.stdout.split()[0])  # subprocess.run returned: the zygote closed the pipe it had inherited
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_a_dead_zygote_is_replaced():
    proc, url, _ = servers.start_server()
    servers.stop_server(proc)
    first = servers._zygote[0]
    first.proc.kill()
    first.proc.wait()
    proc, url, _ = servers.start_server()
    try:
        assert servers._zygote[0] is not first and servers._zygote[0].proc.poll() is None
    finally:
        servers.stop_server(proc)


def test_a_zygote_first_needed_in_a_short_lived_thread_outlives_it():
    """The bench starts its servers from `asyncio.to_thread`: the zygote is not the child of that
    thread (it would be killed when the thread ends, and the next start reset mid-request)."""
    for z in servers._zygote:
        z.close()
    servers._zygote.clear()
    started = []
    t = threading.Thread(target=lambda: started.append(servers.start_server()))
    t.start()
    t.join()
    proc, _, _ = started[0]
    servers.stop_server(proc)
    zygote = servers._zygote[0]
    time.sleep(0.5)  # a zygote killed with the thread would be gone by now
    assert zygote.proc.poll() is None
    proc, url, _ = servers.start_server()
    try:
        assert servers._zygote[0] is zygote
    finally:
        servers.stop_server(proc)
