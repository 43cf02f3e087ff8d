"""The re-check turn: every step it writes is exact, it marks the attempt's first wrong step, and a
slipped re-check is wrong (so training on turn 3+ has something to fix)."""

import random

import pytest

from app.tasks import synthetic as S
from app.tasks.recheck import corrupt_recheck, recheck


def _steps_are_exact(text: str) -> bool:
    return all(eval(f"{s.left}{s.op}{s.operand}") == s.result for s in S.parse_steps(text))  # noqa: S307


@pytest.mark.parametrize("level", list(S.LEVELS))
def test_recheck_is_exact_and_answers_right(level):
    rng = random.Random(0)
    for p in S.problems(5, 150, S.LEVELS[level], "train"):
        for attempt in (None, p.solution, S.corrupt(p, rng)):
            text = recheck(p, attempt)
            assert _steps_are_exact(text), text
            assert S.ANSWER_RE.search(text).group(1) == p.answer


def test_products_by_two_digit_numbers_are_split():
    p = S.Problem("q", 47, [("*", 38), ("-", 25)], S.solve(47, [("*", 38), ("-", 25)]))
    assert recheck(p) == "47*38: 47*8=376. 470*3=1410. 1410+376=1786. 1786-25=1761. The answer is 1761."
    p = S.Problem("q", 12, [("*", 30)], S.solve(12, [("*", 30)]))
    assert recheck(p) == "12*30: 120*3=360. The answer is 360."


def test_the_first_wrong_step_of_the_attempt_is_marked_and_right_ones_kept():
    p = S.Problem("q", 47, [("*", 38), ("-", 25)], S.solve(47, [("*", 38), ("-", 25)]))
    fixed = recheck(p, "47*38=1686. 1686-25=1661. The answer is 1661.")
    assert "1786 (not 1686)." in fixed and fixed.count("(not") == 1  # later steps differ in their inputs
    assert "(not" not in recheck(p, p.solution)


def test_a_slipped_recheck_is_wrong_where_there_is_a_product():
    rng = random.Random(3)
    wrong = 0
    for p in S.problems(6, 200, S.LEVELS["expert"], "train"):
        text = corrupt_recheck(p, rng)
        if any(s.op == "*" and s.operand >= 10 for s in p.steps):
            assert S.ANSWER_RE.search(text).group(1) != p.answer, text
            wrong += 1
    assert wrong > 100
