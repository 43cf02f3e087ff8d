"""tests/alone.py's scheduling: the slow files first, the files with an `alone` test last, the rest in
their collected order between them.

    .venv/bin/python -m pytest -q tests/test_alone.py
"""

import fcntl
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
