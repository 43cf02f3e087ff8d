"""tests/alone.py's scheduling: the slow files first, the files with an `alone` test last, the rest in
their collected order between them.

    .venv/bin/python -m pytest -q tests/test_alone.py
"""

from pathlib import Path

from tests import alone

ROOT = Path("/repo")


class Item:
    def __init__(self, path: str, lonely: bool = False) -> None:
        self.path, self.lonely = ROOT / path, lonely

    def get_closest_marker(self, name: str):
        return object() if self.lonely and name == alone.MARKER else None


def test_slow_files_first_alone_files_last_the_rest_in_order():
    items = [Item("tests/a.py"), Item("tests/lonely.py"), Item("tests/lonely.py", lonely=True), Item("tests/b.py"),
             Item("tests/slow2.py"), Item("tests/slow1.py"), Item("tests/c.py")]
    alone.schedule(items, ["tests/slow1.py", "tests/slow2.py"], ROOT)
    order = [(i.path.name, i.lonely) for i in items]
    assert order == [("slow1.py", False), ("slow2.py", False), ("a.py", False), ("b.py", False), ("c.py", False),
                     ("lonely.py", False), ("lonely.py", True)]  # a file's tests stay together, in their order
