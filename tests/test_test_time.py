"""tests/cpu.py's figures file (`RISE_TEST_CPU_JSON`: each file's CPU and wall seconds, and when it
ran) from a real pytest run, and scripts/test_time.py's table of it by part of the suite.

    .venv/bin/python -m pytest -q tests/test_test_time.py
"""

import json
import os
import subprocess
import sys

from tests.scripts import load_script
from tests.servers import ROOT


def test_a_run_writes_each_files_wall_and_cpu_seconds_and_the_table_puts_each_file_in_its_part(tmp_path):
    (tmp_path / "tests" / "training").mkdir(parents=True)
    (tmp_path / "tests" / "api").mkdir()
    (tmp_path / "conftest.py").write_text(
        "from tests.cpu import CPUByFile\n\n"
        "def pytest_configure(config):\n    config.pluginmanager.register(CPUByFile(), 'cpu_by_file')\n")
    (tmp_path / "tests" / "training" / "test_slow.py").write_text(
        "import time\n\ndef test_waits():\n    time.sleep(0.4)\n\n"
        "def test_works():\n    sum(i * i for i in range(2_000_000))\n")
    (tmp_path / "tests" / "api" / "test_playground_quick.py").write_text("def test_quick():\n    pass\n")
    out = tmp_path / "figures.json"
    env = {**os.environ, "RISE_TEST_CPU_JSON": str(out), "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    figures = json.loads(out.read_text())
    slow, quick = "tests/training/test_slow.py", "tests/api/test_playground_quick.py"
    assert figures["wall_by_file"][slow] >= 0.4 and figures["wall_by_file"][quick] < 0.4
    assert figures["files"][slow] > figures["files"][quick]  # the loop's CPU; the sleep has none
    spans = {row[1]: (row[2], row[3]) for row in figures["timeline"] if row[0] == "main"}
    assert set(spans) == {slow, quick} and min(start for start, _ in spans.values()) == 0
    assert spans[slow][1] - spans[slow][0] >= 0.4
    assert spans[quick][1] <= spans[slow][0]  # one process, in collected order: tests/api before tests/training
    assert set(figures["tests"]) == {f"{slow}::test_waits", f"{slow}::test_works", f"{quick}::test_quick"}

    rows = load_script("test_time").table(figures, root=tmp_path).splitlines()
    training = next(row for row in rows if row.startswith("| training runs"))
    browser = next(row for row in rows if row.startswith("| the browser"))
    assert training.split(" | ")[1] == "2" and browser.split(" | ")[1] == "1"
    assert rows[2] == training  # the most wall seconds first
    assert rows[-1].startswith("| **all** | 3 |")


def test_the_tail_is_from_the_first_worker_out_of_files_to_the_end():
    figures = {"timeline": [["gw0", "tests/a.py", 0, 50], ["gw1", "tests/b.py", 0, 30], ["gw1", "tests/c.py", 30, 45],
                            ["gw0", "tests/d.py", 50, 80]]}
    text = load_script("test_time").tail(figures)
    assert "ran for 80 s" in text and "out of files at 45 s (35 s of tail)" in text
    assert "tests/d.py (gw0, 50-80 s)" in text and "tests/a.py (gw0, 0-50 s)" in text and "tests/c.py" not in text
