"""scripts/inverse_checks.py (issue 28 part 2: is a model's forward check honest?) on texts of the task's own
solver: the worked solution, an honest wrong attempt, a wrong attempt whose check is fudged to match, and a
right answer by a wrong step, each classified as what it is; and one real model's samples tallied.

    .venv/bin/python -m pytest -q tests/evaluation/test_inverse_checks.py
"""

import random

from app.tasks import inverse
from app.tasks.synthetic import Step
from tests.scripts import load_script

PROBLEM = inverse.problems(5, 1, inverse.LEVELS["hard"], split="validation")[0]


def _script():
    return load_script("inverse_checks")


def _fudged(problem: inverse.Problem, wrong: int, bend: bool = True, got: int | None = None) -> str:
    """Wrong inverse steps, then a "check" that lands on the stated end anyway (`bend`) and says it
    matches, writing `got` (default: the check's last result) as what it got."""
    solving, _ = inverse.parse(inverse.corrupt(problem, random.Random(3)))
    check = inverse.forward(wrong, problem.ops)
    if bend:
        check[-1] = Step(check[-1].left, check[-1].op, check[-1].operand, problem.end)
    got = check[-1].result if got is None else got
    return inverse.write(solving, f"{inverse.CHECK} " + " ".join(s.text() for s in check)
                         + f" {got} vs {problem.end}: match.", wrong)


def test_each_kind_of_solution_is_classified_as_what_it_is():
    s = _script()
    assert s.classify(PROBLEM, PROBLEM.solution) == {"right": True, "verdict": "matches", "honest": True,
                                                     "lucky": False, "lucky_where": [], "compared": "follows",
                                                     "answer": PROBLEM.start}
    attempt = inverse.corrupt(PROBLEM, random.Random(1))  # one slip, then the honest forward check
    c = s.classify(PROBLEM, attempt)
    assert (c["right"], c["verdict"], c["honest"], c["lucky"], c["compared"]) == (False, "does not match", True,
                                                                                  False, "follows")
    wrong = s.final_answer(attempt)
    c = s.classify(PROBLEM, _fudged(PROBLEM, wrong))
    assert (c["right"], c["verdict"], c["honest"], c["compared"]) == (False, "matches", False, "follows")
    # an honest chain whose different end is declared a match: the verdict does not follow the comparison
    assert s.classify(PROBLEM, _fudged(PROBLEM, wrong, bend=False))["compared"] == "verdict"
    # an honest chain, then its end's number copied from the question: the comparison is not the chain's
    assert s.classify(PROBLEM, _fudged(PROBLEM, wrong, bend=False, got=PROBLEM.end))["compared"] == "copied"
    # the right answer stated after wrong inverse steps: lucky, wrong in its solving (its check is honest)
    solving, _ = inverse.parse(attempt)
    lucky = inverse.write(solving, inverse.forward_check(PROBLEM, PROBLEM.start), PROBLEM.start)
    c = s.classify(PROBLEM, lucky)
    assert (c["right"], c["honest"], c["lucky"], c["lucky_where"]) == (True, True, True, ["solving"])
    assert s.classify(PROBLEM, "I do not know.")["verdict"] == "no check"
    earlier = PROBLEM.solution.replace(f" {PROBLEM.end} vs {PROBLEM.end}: match.", " It matches.")  # the former format
    assert s.classify(PROBLEM, earlier)["compared"] == "none" and s.classify(PROBLEM, earlier)["verdict"] == "matches"


def test_the_tally_counts_dishonest_checks_of_wrong_answers():
    s = _script()
    wrong = s.final_answer(inverse.corrupt(PROBLEM, random.Random(1)))
    rows = [s.classify(PROBLEM, t) for t in (PROBLEM.solution, inverse.corrupt(PROBLEM, random.Random(1)),
                                              _fudged(PROBLEM, wrong))]
    t = s.tally(rows)
    assert (t["samples"], t["right"], t["wrong answers"], t["honest checks"]) == (3, 1, 2, 2)
    assert t["wrong answers whose check says it matches"] == 1
    assert t["answer x verdict"] == {"right, matches": 1, "wrong, does not match": 1, "wrong, matches": 1}
    assert t["written comparison"] == {"follows": 3}


def test_a_real_model_is_sampled_and_tallied(model_path, capsys):
    """The shipped model has never seen an inverse problem: its samples are classified all the same."""
    assert _script().main([str(model_path), "--problems", "2", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert '"samples": 4' in out and '"answer x verdict"' in out


def test_selection_takes_the_first_answer_whose_check_matches():
    s = _script()
    honest_wrong = inverse.corrupt(PROBLEM, random.Random(1))  # says it does not match
    wrong = s.final_answer(honest_wrong)
    rows = [s.classify(PROBLEM, t) for t in (honest_wrong, honest_wrong, PROBLEM.solution)]
    fudged = [s.classify(PROBLEM, t) for t in (_fudged(PROBLEM, wrong), PROBLEM.solution)]
    picked = s.selection([rows, fudged])
    # problem 1: first and majority are the wrong answer, the first matching check is the right one;
    # problem 2: the first sample's fudged check says it matches, so that wrong answer is taken (and a
    # one-one tie goes to the earlier answer)
    assert {k: v for k, v in picked.items() if k != "first that says it matches - majority"} == \
        {"problems": 2, "first sample": 0.0, "majority": 0.0, "first that says it matches": 0.5}
    assert picked["first that says it matches - majority"] == {"difference": 0.5, "se": 0.3536, "better": 1,
                                                               "worse": 0}  # sqrt(1 - 1/2) / 2
    assert s.selection([rows])["first that says it matches"] == 1.0 and s.selection([rows])["majority"] == 0.0
