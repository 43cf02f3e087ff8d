import random

import pytest

from app.tasks import synthetic as S
from app.tasks.datasets import load


def test_generation_is_reproducible():
    assert [p.question for p in S.problems(3, 20)] == [p.question for p in S.problems(3, 20)]
    assert [p.question for p in S.problems(3, 20)] != [p.question for p in S.problems(4, 20)]


def test_splits_never_share_a_structure():
    """Decided by what a problem computes, not its wording: the same numbers and operations under
    other names stay on one side (easy problems repeat structures often, so this can fail)."""
    rng = random.Random(0)
    key = lambda p: S.structure(p.start, p.ops)  # noqa: E731
    train = {key(S.generate(rng, S.LEVELS["easy"], "train")) for _ in range(3000)}
    val = {key(p) for p in S.problems(1, 1000, S.LEVELS["easy"], "validation")}
    test_problems = S.problems(0, 1000, S.LEVELS["easy"], "test")
    test = {key(p) for p in test_problems}
    assert train and val and test and not (train & test) and not (train & val) and not (val & test)
    assert all(S.split_of(p) == "test" for p in test_problems)
    renamed = S.Problem("Zed has ...", test_problems[0].start, test_problems[0].ops, test_problems[0].steps)
    assert S.split_of(renamed) == "test"


@pytest.mark.parametrize("level", list(S.LEVELS))
def test_solution_solves_the_question(level):
    d = S.LEVELS[level]
    for p in S.problems(1, 200, d):
        assert d.min_steps <= len(p.steps) <= d.max_steps
        value = p.start
        for step in p.steps:
            assert step.left == value and step.result >= 0
            value = eval(f"{step.left}{step.op}{step.operand}")  # noqa: S307 - digits and one operator
            assert value == step.result <= d.max_total
        assert p.solution.endswith(f"The answer is {value}.")
        assert str(p.start) in p.question


def test_check_steps_rejects_lucky_answers():
    p = S.Problem("q", 10, [("+", 5), ("-", 3)], S.solve(10, [("+", 5), ("-", 3)]))
    assert S.check_steps(p, "10+5=15. 15-3=12. The answer is 12.")
    assert not S.check_steps(p, "10+5=16. 16-3=12. The answer is 12.")  # right answer, wrong steps
    assert not S.check_steps(p, "10+5=15. 15-3=12. The answer is 13.")


def test_corrupt_is_wrong_and_correction_is_minimal():
    rng = random.Random(5)
    for p in S.problems(2, 100):
        wrong = S.corrupt(p, rng)
        assert not S.check_steps(p, wrong)
        assert S.ANSWER_RE.search(wrong).group(1) != p.answer
        fixed = S.minimal_correction(p, wrong)
        assert S.check_steps(p, fixed)


def test_bad_split_is_refused():
    with pytest.raises(ValueError, match="split"):
        S.generate(random.Random(0), split="dev")


def test_benchmark_loaders_read_shared_data(data_dir, monkeypatch):
    monkeypatch.setenv("RISE_DATA_DIR", str(data_dir))
    gsm = load("gsm8k", "test", limit=5)
    assert len(gsm) == 5 and gsm[0][1] == "18"
    math = load("math500", "test", limit=3)
    assert len(math) == 3 and all(q and a for q, a in math)
    assert len(load("synthetic", limit=7)) == 7
    with pytest.raises(ValueError, match="unknown dataset"):
        load("nope")
