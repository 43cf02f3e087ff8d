"""scripts/one_turn_baseline.py (issue 28's table of the re-check model against its one-turn baseline):
accuracy and SE over problems, tokens per right answer, the paired difference with the baseline's
first turn, and runs on other problems or seeds refused.

    .venv/bin/python -m pytest -q tests/evaluation/test_one_turn_baseline.py
"""

import json
from pathlib import Path

import pytest

from app.evaluation.paired import write_records
from tests.scripts import load_script

IDS = ["a", "b", "c", "d"]


def _script():
    return load_script("one_turn_baseline")


def _run(folder: Path, seeds: dict, tokens: dict, ids=IDS) -> Path:
    folder.mkdir()
    write_records(folder, ids, seeds)  # rise eval's own per_problem.json
    (folder / "metrics.json").write_text(json.dumps({"tokens": {k: {"completion": v} for k, v in tokens.items()}}))
    return folder


def test_the_table_pairs_every_method_with_the_baselines_first_turn(tmp_path):
    base = _run(tmp_path / "base", {"0": {"m1@t1": [1, 1, 0, 0], "m5@t1": [1, 1, 1, 0]},
                                    "1": {"m1@t1": [1, 0, 0, 0], "m5@t1": [1, 1, 1, 0]}}, {"m1@t1": 40, "m5@t1": 200})
    rise = _run(tmp_path / "rise", {"0": {"m1@t1": [0, 1, 0, 0], "m1@t5": [1, 1, 1, 1]},
                                    "1": {"m1@t1": [0, 0, 0, 0], "m1@t5": [1, 1, 1, 0]}}, {"m1@t1": 38, "m1@t5": 266})
    rows = {r["method"]: r for r in _script().rows(base, rise, tmp_path / "no-compute")}
    b, r5 = rows["one-turn baseline, m1@t1"], rows["rise-synth, m1@t5"]
    assert b["accuracy"] == 0.375 and b["tokens_per_right_answer"] == round(40 / 0.375, 1) and b["vs_baseline_m1"] is None
    assert r5["accuracy"] == 0.875 and r5["n"] == 4 and r5["seeds"] == 2
    # per problem (mean over seeds) rise m1@t5 - base m1@t1: 0, 0.5, 1, 0.5 -> mean 0.5
    assert r5["vs_baseline_m1"]["diff"] == 0.5 and r5["vs_baseline_m1"]["n"] == 4
    assert len(rows) == 4  # no --compute records: its two rows are left out
    assert "| rise-synth, m1@t5 | 87.5 ± " in _script().markdown(list(rows.values()))


def test_runs_on_other_problems_are_refused(tmp_path):
    base = _run(tmp_path / "base", {"0": {"m1@t1": [1, 0, 0, 0], "m5@t1": [1, 0, 0, 0]}}, {"m1@t1": 1, "m5@t1": 1})
    rise = _run(tmp_path / "rise", {"0": {"m1@t1": [1, 0, 0, 0], "m1@t5": [1, 0, 0, 0]}}, {"m1@t1": 1, "m1@t5": 1},
                ids=["a", "b", "c", "e"])
    with pytest.raises(SystemExit, match="share their problems"):
        _script().rows(base, rise, tmp_path)


def _compute(folder: Path, seeds: dict, tokens: dict, ids=IDS) -> Path:
    """A `rise eval --compute` run's records: compute.json's rows and compute_per_problem.json."""
    folder.mkdir()
    write_records(folder, ids, seeds, "compute_per_problem.json")
    (folder / "compute.json").write_text(json.dumps({"rows": [{"method": k, "tokens_per_problem": v} for k, v in tokens.items()]}))
    return folder


def test_both_models_get_the_served_rules_from_their_compute_runs(tmp_path):
    base = _run(tmp_path / "base", {"0": {"m1@t1": [1, 1, 0, 0], "m5@t1": [1, 1, 1, 0]}}, {"m1@t1": 40, "m5@t1": 200})
    rise = _run(tmp_path / "rise", {"0": {"m1@t1": [0, 1, 0, 0], "m1@t5": [1, 1, 1, 1]}}, {"m1@t1": 38, "m1@t5": 266})
    rules = ("fixed K=2 tie-last", "confident(mean>=0.99) K=5")
    rc = _compute(tmp_path / "rc", {"0": {rules[0]: [1, 1, 1, 0], rules[1]: [1, 1, 1, 1]}}, {rules[0]: 95, rules[1]: 75})
    bc = _compute(tmp_path / "bc", {"0": {rules[0]: [1, 1, 0, 0], rules[1]: [1, 1, 1, 0]}}, {rules[0]: 90, rules[1]: 60})
    rows = {r["method"]: r for r in _script().rows(base, rise, rc, bc)}
    assert len(rows) == 8
    b = rows["one-turn baseline, `confident` (mean >= 0.99, K = 5)"]
    assert b["accuracy"] == 0.75 and b["tokens_per_problem"] == 60 and b["vs_baseline_m1"]["diff"] == 0.25
    assert rows["rise-synth, `confident` (mean >= 0.99, K = 5)"]["accuracy"] == 1.0
    assert rows["one-turn baseline, m1@t2 ties to the later turn (served)"]["accuracy"] == 0.5
    with pytest.raises(SystemExit, match="has no compute_per_problem.json"):  # named but not a --compute run
        _script().rows(base, rise, rc, tmp_path / "base")
    other = _compute(tmp_path / "other", {"1": {rules[0]: [1, 1, 0, 0], rules[1]: [1, 1, 1, 0]}}, {rules[0]: 1, rules[1]: 1})
    with pytest.raises(SystemExit, match="share the problems and seeds"):
        _script().rows(base, rise, rc, other)
