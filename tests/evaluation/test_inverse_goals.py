"""scripts/inverse_goals.py (issue 28 part 2's goals from three `rise eval` runs): each goal's paired
difference over problems, the flow rule, and runs on other problems refused.

    .venv/bin/python -m pytest -q tests/evaluation/test_inverse_goals.py
"""

import json
from pathlib import Path

import pytest

from app.evaluation.paired import write_records
from tests.scripts import load_script

IDS = ["a", "b", "c", "d"]


def _script():
    return load_script("inverse_goals")


def _run(folder: Path, rec: dict, ids=IDS) -> Path:
    """A two-turn `rise eval` run on one seed: per-problem bits and the metrics it reads."""
    folder.mkdir()
    write_records(folder, ids, {"0": rec})
    summary = {k: {"mean": sum(v) / len(v), "se": 0.1} for k, v in rec.items()}
    flow = {"turn_accuracy": {t: summary[f"turn_accuracy/{t}"] for t in ("t1", "t2")}}
    (folder / "metrics.json").write_text(json.dumps({
        "config": {"turns": 2}, "summary": summary, "flow": flow,
        "tokens": {k: {"completion": 10.0 * (1 + k.endswith("t2") + 4 * k.startswith("m5"))} for k in rec}}))
    return folder


def _rec(t1, t2, m5, w2r, r2w):
    return {"m1@t1": t1, "m1@t2": t2, "m5@t1": m5, "p1@t2": t2, "turn_accuracy/t1": t1, "turn_accuracy/t2": t2,
            "t1->t2/wrong_to_right": w2r, "t1->t2/right_to_wrong": r2w}


def test_each_goal_is_the_paired_difference_it_names(tmp_path):
    rise = _run(tmp_path / "rise", _rec([1, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]))
    rft = _run(tmp_path / "rft", _rec([1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]))
    base = _run(tmp_path / "base", _rec([1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]))
    g = {row["goal"]: row for row in _script().goals(rise, rft, base)}
    assert g["RISE m1@t2 - m5@t1 >= +4, z > 2.5"]["diff"] == 0.5
    assert g["RISE turn 2's own accuracy - turn 1's >= +6"]["diff"] == 0.5 and g["RISE turn 2's own accuracy - turn 1's >= +6"]["met"]
    flow = g["t1->t2 right->wrong <= 1/3 of wrong->right"]
    assert (flow["wrong_to_right"], flow["right_to_wrong"], flow["met"]) == (0.5, 0.0, True)
    assert g["RISE turn 1 within 2 points of the base's"]["diff"] == 0 and g["RISE turn 1 within 2 points of the base's"]["met"]
    vs = g["RISE m1@t2 - RFT m5@t1 >= +2 (about equal tokens)"]
    assert vs["diff"] == 0.25 and vs["tokens"] == [20.0, 50.0] and vs["met"]
    assert g["RISE m1@t1 - RFT m1@t1 (one answer each)"]["diff"] == -0.25
    assert "| RISE m1@t2 - m5@t1 >= +4, z > 2.5 | +50.0 (SE " in _script().markdown(list(g.values()))


def test_runs_on_other_problems_are_refused(tmp_path):
    rec = _rec([1, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0])
    a, b = _run(tmp_path / "a", rec), _run(tmp_path / "b", rec)
    other = _run(tmp_path / "c", rec, ids=["a", "b", "c", "e"])
    with pytest.raises(SystemExit, match="share their problems"):
        _script().goals(a, b, other)
