"""The re-check turn: every step it writes is exact, products by two-digit numbers are split into
steps whose results sit beside their operands, and a slipped re-check is wrong (so training on turn
3+ has something to fix)."""

import random

import pytest

from app.tasks import synthetic as S
from app.tasks.recheck import corrupt_recheck, recheck


def _steps_are_exact(text: str) -> bool:
    """Every step in the text holds: '470*3=1410. 47*8=376. 1410+376=1786.' is 3 true equations."""
    body = text.split(" The answer is")[0]
    for sentence in body.split(". "):
        values = [eval(part) for part in sentence.rstrip(".").split("=")]  # noqa: S307 - digits and + - *
        if len(set(values)) != 1:
            return False
    return True


@pytest.mark.parametrize("level", list(S.LEVELS))
def test_recheck_is_exact_and_answers_right(level):
    for p in S.problems(5, 150, S.LEVELS[level], "train"):
        text = recheck(p)
        assert _steps_are_exact(text), text
        assert S.ANSWER_RE.search(text).group(1) == p.answer


def test_products_by_two_digit_numbers_are_split():
    p = S.Problem("q", 47, [("*", 38), ("-", 25)], S.solve(47, [("*", 38), ("-", 25)]))
    assert recheck(p) == "470*3=1410. 47*8=376. 1410+376=1786. 1786-25=1761. The answer is 1761."
    p = S.Problem("q", 12, [("*", 30), ("*", 3)], S.solve(12, [("*", 30), ("*", 3)]))
    assert recheck(p) == "120*3=360. 360*3=1080. The answer is 1080."


def test_a_slipped_recheck_is_wrong_where_there_is_a_product():
    rng = random.Random(3)
    wrong = cut = 0
    for p in S.problems(6, 200, S.LEVELS["expert"], "train"):
        text = corrupt_recheck(p, rng)
        if any(s.op == "*" and s.operand >= 10 for s in p.steps):
            assert S.ANSWER_RE.search(text).group(1) != p.answer, text
            if text.count(".") == recheck(p).count("."):  # same steps, one slip
                assert not _steps_are_exact(text)
                wrong += 1
            else:  # cut short after the last product's tens part: a right prefix of the re-check
                last = p.steps[-1]
                assert last.op == "*" and last.operand % 10, text
                assert recheck(p).startswith(text.split(" The answer is")[0]), (text, recheck(p))
                cut += 1
    assert wrong > 100 and cut > 5
