"""tests/alone.py's scheduling: the slow files first, the files with an `alone` test last, the rest in
their collected order between them.

    .venv/bin/python -m pytest -q tests/test_alone.py
"""

import fcntl
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from tests import alone

ROOT = Path("/repo")


class Item:
    def __init__(self, path: str, lonely: bool = False, config=None) -> None:
        self.path, self.lonely, self.config = ROOT / path, lonely, config

    def get_closest_marker(self, name: str):
        return object() if self.lonely and name == alone.MARKER else None


def test_slow_files_first_alone_files_last_the_rest_in_order():
    items = [Item("tests/a.py"), Item("tests/lonely.py"), Item("tests/lonely.py", lonely=True), Item("tests/b.py"),
             Item("tests/slow2.py"), Item("tests/slow1.py"), Item("tests/c.py")]
    alone.schedule(items, ["tests/slow1.py", "tests/slow2.py"], ROOT)
    order = [(i.path.name, i.lonely) for i in items]
    assert order == [("slow1.py", False), ("slow2.py", False), ("a.py", False), ("b.py", False), ("c.py", False),
                     ("lonely.py", False), ("lonely.py", True)]  # a file's tests stay together, in their order


def test_alone_tests_in_a_row_hold_the_lock_between_them_and_let_it_go_after_the_last(tmp_path):
    """Another worker (another open file: flock locks belong to it) cannot take its shared turn between
    two `alone` tests in a row, and can once the last has ended; nor while a lone one runs."""
    (tmp_path / "worker0").mkdir()
    config = SimpleNamespace(workerinput={}, option=SimpleNamespace(basetemp=str(tmp_path / "worker0")))
    first, second = (Item("tests/lonely.py", lonely=True, config=config) for _ in range(2))
    after = Item("tests/lonely.py", config=config)

    def others_can_run() -> bool:
        with open(tmp_path / "run.lock", "a") as run:
            try:
                fcntl.flock(run, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(run, fcntl.LOCK_UN)
            return True

    with alone.turn(first, second):
        assert not others_can_run()
    assert not others_can_run()  # held for the next `alone` test
    with alone.turn(second, after):
        assert not others_can_run()
    assert others_can_run()
    with alone.turn(after, None):
        assert others_can_run()  # a test that is not `alone` shares the lock
    with alone.turn(first, None):
        assert not others_can_run()
    assert others_can_run()


def test_make_test_hands_the_files_to_the_workers_in_the_collected_order(tmp_path):
    """xdist's `--dist loadfile` sorts the files by their number of tests (most first) unless told
    `--no-loadscope-reorder`; then the slow files that conftest.py puts first would go to the workers
    last. The Makefile's own pytest options, one worker, a file of one test sorted before a file of three."""
    recipe = re.search(r"^test:.*\n\t(.*)$", (Path(__file__).parent.parent / "Makefile").read_text(), re.M).group(1)
    argv = shlex.split(recipe)
    options = argv[argv.index("pytest") + 1:-1]  # between `-m pytest` and the `tests` folder
    options[options.index("-n") + 1] = "1"
    (tmp_path / "conftest.py").write_text(
        "def pytest_collection_modifyitems(items):\n"
        "    items.sort(key=lambda item: item.path.name != 'test_one.py')\n")
    log = tmp_path / "ran.txt"
    for name, n in (("test_many.py", 3), ("test_one.py", 1)):
        (tmp_path / name).write_text("".join(
            f"def test_{i}():\n    open({str(log)!r}, 'a').write({name!r} + '\\n')\n" for i in range(n)))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", *options, "-p", "no:cacheprovider", "."], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert log.read_text().split() == ["test_one.py"] + ["test_many.py"] * 3
