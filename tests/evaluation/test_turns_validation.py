"""scripts/turns_validation.py (the quick validation check used while tuning recipes) scores m1 with the
same tie rule as `rise eval` and the docs: a tie goes to the first of the tied answers.

    .venv/bin/python -m pytest -q tests/evaluation/test_turns_validation.py
"""

from app.answers.checker import get_checker
from app.evaluation import metrics
from tests.scripts import load_script

CHECK = get_checker("synthetic")


def _script():
    return load_script("turns_validation")


def test_m1_ties_go_to_the_first_answer_as_in_rise_eval():
    # problem 1: wrong then right (a 1-1 tie at t2); problem 2: right, right, wrong
    answers = [["3", "4", "4"], ["5", "5", "6"]]
    refs = ["4", "5"]
    samples = [["4", "3", "3", "4", "4"], ["6", "5", "6", "5", "7"]]  # m5: 3-2 for 4; 2-2 tie, 6 first
    out = _script().summarize(answers, samples, refs, CHECK.equivalent, turns=3)
    assert out["m1@tk"] == [50.0, 50.0, 100.0]  # t2: problem 1's tie -> "3" (first), not "4" (later)
    ours = metrics.m1_vectors(answers, refs, CHECK.equivalent, 3)
    assert out["m1@tk"] == [100 * sum(ours[f"m1@t{k}"]) / 2 for k in (1, 2, 3)]
    assert out["m5@t1"] == 50.0  # problem 2's 2-2 tie goes to 6, the first of the tied
    assert out["turn_accuracy"] == [50.0, 100.0, 50.0]
    assert out["flow"]["t1>t2"] == {"right_to_wrong": 0.0, "wrong_to_right": 50.0}
    assert out["tie_rule"] == "first"
