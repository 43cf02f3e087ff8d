"""The `rise` command run inside the test process: `app.cli.main(ARGS)` with what it prints and its
exit status, as `subprocess.run` would return them. A new Python process costs 5 s of CPU (torch
and transformers import) on this 2-core machine; the tests of options and refusals pay it once per
worker this way. A few tests still start `python -m app.cli` as a real process (tests/test_cli.py),
so the entry point itself stays covered. Not for `rise serve` (it installs signal handlers).

    from tests.cli import rise_here
    p = rise_here("refine", "Sam has 3 apples. He buys 2 more. How many apples does Sam have now?")
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import traceback

from app.cli import main


@contextlib.contextmanager
def environment(extra: dict[str, str] | None):
    """os.environ plus `extra` for the block, restored after it."""
    before = dict(os.environ)
    os.environ.update(extra or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def rise_here(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`rise ARGS` in this process. An uncaught exception is exit status 1 with its traceback on
    stderr, as the interpreter would print it; `check` asserts status 0."""
    assert args[:1] != ("serve",), "rise serve installs signal handlers: start it as a process"
    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:
                print(e.code, file=err)
                code = 1
        except Exception:  # noqa: BLE001 - reported as the interpreter would
            traceback.print_exc(file=err)
            code = 1
    p = subprocess.CompletedProcess(["rise", *args], code, out.getvalue(), err.getvalue())
    if check:
        assert p.returncode == 0, p.stderr
    return p
