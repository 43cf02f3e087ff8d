"""A warm parent for the suite's `rise serve` processes: it imports the server's modules once (torch,
transformers, FastAPI: about 5 s of CPU on this 2-core machine), then forks a server for each
request, with the environment, working folder and log the test asked for. The server runs the same
`app.cli.main(["serve", ...])` as `python -m app.cli serve` would, in a process of its own.

The server is the test process's child, as with `subprocess.Popen`: the zygote forks a go-between
that forks the server and exits at once, and the test process, a child subreaper, inherits the
orphan. So `Forked` can wait for it and read its exit status. tests/servers.py uses it; the tests
of start-up itself (signals while importing, an installed package) start real processes.

    .venv/bin/python -c "from tests.zygote import Zygote; z = Zygote(); print(z.fork(['serve', '--help'], log='/tmp/z.log').wait())"
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1


class Forked:
    """A forked server, with the part of `subprocess.Popen`'s interface the tests use."""

    def __init__(self, pid: int, args: list[str]) -> None:
        self.pid, self.args, self.returncode = pid, args, None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: it is gone
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The warm parent, started on first use (one per test process)."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.path = Path(tempfile.mkdtemp(prefix="rise-zygote-")) / "sock"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.zygote", str(self.path), str(os.getpid())],
                                     cwd=Path(__file__).resolve().parent.parent, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not self.path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the zygote did not start (exit {self.proc.poll()})")
            time.sleep(0.05)

    def fork(self, argv: list[str], *, log: str | Path, env: dict[str, str] | None = None,
             cwd: str | Path | None = None) -> Forked:
        """`rise ARGV` in a new process (environment `env`, default this one's; stdout and stderr to `log`)."""
        request = {"argv": argv, "log": str(log), "env": dict(os.environ if env is None else env),
                   "cwd": str(cwd or os.getcwd())}
        with self._lock, socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.path))
            s.sendall(json.dumps(request).encode() + b"\n")
            answer = s.makefile().readline()
        if not answer:
            raise RuntimeError("the zygote did not answer")
        return Forked(json.loads(answer)["pid"], ["rise", *argv])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _server(request: dict) -> None:
    """In the forked server: the asked-for environment, folder and log, then `rise ARGV`; exits."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    sys.argv = ["rise", *request["argv"]]
    from app.cli import main

    sys.exit(main(request["argv"]))  # through the interpreter's own exit (atexit, flushing)


def _die_with_parent(parent: int) -> None:
    """SIGKILL when the test process that started this one exits (or the thread that did: tests/servers.py
    starts it from a thread that lives as long as the process, and replaces a dead one), so that none outlives the run holding its memory and the
    run's stdout (a `pytest ... | grep` waited for it forever)."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # it exited before the line above
        os._exit(1)


def _serve_forever(path: str, parent: int) -> None:
    _die_with_parent(parent)
    import app.api.cli  # noqa: F401 - the point: these imports happen once, here
    import app.api.main  # noqa: F401
    import app.engines.factory  # noqa: F401
    import app.engines.hf  # noqa: F401
    import transformers.generation.utils  # noqa: F401 - (accelerate, boto3): what loading a model imports
    from transformers import AutoTokenizer, LlamaForCausalLM  # noqa: F401 - the shipped models' classes

    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path + ".tmp")
    listener.listen(16)
    os.rename(path + ".tmp", path)  # ready
    while True:
        conn, _ = listener.accept()
        with conn:
            request = json.loads(conn.makefile().readline())
            read, write = os.pipe()
            between = os.fork()
            if between == 0:  # the go-between: forks the server and exits, orphaning it
                os.close(read)
                server = os.fork()
                if server == 0:
                    os.close(write)
                    listener.close()
                    conn.close()
                    _server(request)
                os.write(write, str(server).encode())
                os._exit(0)
            os.close(write)
            pid = int(os.read(read, 32) or b"0")
            os.close(read)
            os.waitpid(between, 0)  # gone, so the server is the test process's now
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


if __name__ == "__main__":
    _serve_forever(sys.argv[1], int(sys.argv[2]))
