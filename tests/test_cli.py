"""`rise refine` as a user runs it, on the shipped model: the plain output and an unknown command in
a real process (`python -m app.cli`), the rest through the same `main` in this process
(tests/cli.py: a process costs 5 s of imports)."""

import json
import subprocess
import sys

import pytest

from tests.cli import rise_here

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


def rise(*args, check=True):
    p = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def test_reference_stops_at_the_first_correct_turn():
    r = json.loads(rise_here("refine", Q, "--reference", "31", "--json").stdout)
    assert r["stop_reason"] == "correct" and r["final_turn"] == 1 and len(r["turns"]) == 1
    assert r["final_answer"] == "31" and r["correct"] is True
    # a reference the model never reaches: all turns run, the reference is never echoed
    out = rise_here("refine", Q, "--reference", "31415926", "--turns", "3", "--json").stdout  # (not "777": the
    r = json.loads(out)  # output's random id and timings may hold any short run of digits)
    assert r["stop_reason"] == "max_turns" and len(r["turns"]) == 3 and r["correct"] is False
    assert "31415926" not in out


def test_without_reference_runs_all_turns_and_votes():
    r = json.loads(rise_here("refine", Q, "--turns", "3", "--json").stdout)
    assert len(r["turns"]) == 3 and r["stop_reason"] == "max_turns" and r["mode"] == "self"
    assert sum(r["votes"].values()) == 3 and r["final_answer"] == "31"


def test_plain_output_shows_turns():
    out = rise("refine", Q, "--turns", "2").stdout
    assert "--- turn 1 ---" in out and "--- turn 2 ---" in out and "final answer: 31" in out


@pytest.mark.parametrize("args,message", [
    (["refine", ""], "empty"),
    (["refine", Q, "--turns", "0"], "--turns"),
    (["refine", Q, "--turns", "1000"], "--turns"),
    (["refine", Q, "--temperature", "-1"], "temperature"),
    (["refine", Q, "--top-p", "0"], "top_p"),
    (["refine", Q, "--samples", "100000"], "--samples"),
    (["refine", Q, "--max-tokens", "-5"], "--max-tokens"),
    (["refine", Q, "--model", "/nonexistent"], "not a model directory"),
    (["refine", "Sam has 3 apples. " * 3000], "context"),
    (["nope"], "unknown command"),
])
def test_bad_input_exits_2_with_a_message(args, message):
    p = rise_here(*args, check=False)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr


def test_the_entry_point_refuses_in_a_real_process():
    p = rise("refine", Q, "--turns", "0", check=False)
    assert p.returncode == 2 and "--turns" in p.stderr and "Traceback" not in p.stderr
    p = rise("nope", check=False)
    assert p.returncode == 2 and "unknown command" in p.stderr
