"""Statistics over problems and seeds: the summary's standard error and n, paired differences, and
the per-problem records that let two runs be compared."""

import json
import math

import pytest

from app.evaluation import paired
from app.evaluation.report import comparison, main as report_main


def test_the_summary_counts_problems_not_problems_times_seeds():
    # 4 problems x 2 seeds: per-problem means 1, 0.5, 0.5, 0
    seeds = [[1, 1, 0, 0], [1, 0, 1, 0]]
    s = paired.across_seeds(seeds)
    assert s["n"] == 4 and s["seeds"] == 2 and s["mean"] == 0.5
    x = [1, 0.5, 0.5, 0]
    expected = math.sqrt(sum((v - 0.5) ** 2 for v in x) / 3 / 4)
    assert s["se"] == round(expected, 4)
    # the mislabelled form (binomial over problems x seeds) would be smaller: not what is reported
    assert s["se"] > round(math.sqrt(0.25 / 8), 4)
    assert (s["min"], s["max"]) == (0.5, 0.5)


def test_seeds_that_agree_do_not_shrink_the_error():
    one = [1, 0, 1, 1, 0, 1, 0, 1]
    assert paired.across_seeds([one, one])["se"] == paired.across_seeds([one])["se"]


def test_paired_difference_uses_per_problem_differences():
    a = [[1, 1, 1, 0, 1], [1, 1, 0, 0, 1]]
    b = [[1, 0, 1, 0, 0], [1, 0, 1, 0, 1]]
    d = paired.paired(a, b)
    per_problem = [0, 1, -0.5, 0, 0.5]
    mean = sum(per_problem) / 5
    se = math.sqrt(sum((v - mean) ** 2 for v in per_problem) / 4 / 5)
    assert d["diff"] == round(mean, 4) and d["se"] == round(se, 4) and d["n"] == 5
    assert d["z"] == round(round(mean, 4) / round(se, 4), 2)
    with pytest.raises(ValueError, match="same problems"):
        paired.paired(a, [[1, 0]])


def test_within_run_pairs_sequential_against_parallel_and_last_turn_against_first():
    rec = {"0": {"m1@t3": [1, 1, 0], "m1@t1": [1, 0, 0], "m5@t1": [0, 1, 0], "p1@t3": [1, 1, 1], "p1@t1": [1, 0, 0],
                 "turn_accuracy/t1": [1, 0, 0], "turn_accuracy/t3": [0, 1, 1]}}
    out = paired.within_run(rec, turns=3)
    assert out["m1@t3 - m5@t1"]["diff"] == round(1 / 3, 4)
    assert out["p1@t3 - p1@t1"]["diff"] == round(2 / 3, 4)
    assert out["t3 - t1 (each turn's own accuracy)"]["diff"] == round(1 / 3, 4)


def _run(path, questions, per_seed):
    path.mkdir()
    (path / "metrics.json").write_text(json.dumps({"n_problems": len(questions)}))
    paired.write_records(path, questions, per_seed)
    return path / "metrics.json"


def test_records_round_trip_and_two_runs_compare_per_metric(tmp_path):
    qs = ["q1", "q2", "q3", "q4"]
    a = _run(tmp_path / "a", qs, {"0": {"m1@t2": [1, 1, 1, 0]}, "1": {"m1@t2": [1, 1, 0, 0]}})
    b = _run(tmp_path / "b", qs, {"0": {"m1@t2": [1, 0, 1, 0]}, "1": {"m1@t2": [0, 0, 1, 0]}})
    ids, rec = paired.read_records(a)
    assert ids == [paired.problem_id(q) for q in qs] and rec["1"]["m1@t2"] == [1, 1, 0, 0]
    d = paired.compare(a, b)["m1@t2"]
    assert d["diff"] == 0.25 and d["n"] == 4  # per problem: 0.5, 1, -0.5, 0
    assert "| m1@t2 | +25.0 |" in comparison(a, b)


def test_runs_on_other_problems_or_seeds_are_not_paired(tmp_path):
    a = _run(tmp_path / "a", ["q1", "q2"], {"0": {"m1@t1": [1, 0]}})
    other_q = _run(tmp_path / "b", ["q1", "q3"], {"0": {"m1@t1": [1, 0]}})
    other_seed = _run(tmp_path / "c", ["q1", "q2"], {"1": {"m1@t1": [1, 0]}})
    with pytest.raises(ValueError, match="same problems"):
        paired.compare(a, other_q)
    with pytest.raises(ValueError, match="seeds"):
        paired.compare(a, other_seed)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metrics.json").write_text("{}")
    assert "not possible" in comparison(a, tmp_path / "old" / "metrics.json")


def test_records_hold_only_zero_or_one(tmp_path):
    with pytest.raises(ValueError, match="0/1"):
        paired.write_records(tmp_path, ["q"], {"0": {"m1@t1": [0.5]}})


def test_report_refuses_missing_files(tmp_path, capsys):
    assert report_main([str(tmp_path / "nope.json")]) == 2
    assert "not found" in capsys.readouterr().err
