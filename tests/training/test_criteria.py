"""RISE's trajectory criteria on a hand-made set: which turns each keeps as targets, their exp(r/τ)
weights, and the counts `rise train rise` reports.

    .venv/bin/python -m pytest -q tests/training/test_criteria.py
"""

import math

import pytest

from app.training.collect import CollectConfig, CollectStats, trajectory
from app.training.criteria import CRITERIA, keeps, kept

# rewards of a trajectory's turns (1 right, 0 wrong, -1 no answer) -> targets kept by all, better, best, success
HAND_MADE = [
    ([1], (1, 1, 1, 1)),  # right at once
    ([0, 1], (2, 2, 2, 1)),  # fixed after feedback
    ([-1, 0], (2, 2, 2, 0)),  # an answer at last, still wrong: better than none
    ([0, 0], (2, 1, 2, 0)),  # no better: `better` drops the second turn, `best` keeps a tie
    ([0, -1], (2, 1, 1, 0)),  # worse: only `all` keeps it
    ([1, 1], (2, 1, 2, 2)),  # kept a right answer after "incorrect"
    ([0, -1, 0], (3, 2, 2, 0)),  # back up to the first turn's level: better than the last, as good as the best
]


@pytest.mark.parametrize("rewards,expected", HAND_MADE)
def test_each_criterion_keeps_what_the_rise_code_keeps(rewards, expected):
    assert tuple(kept(rewards)[c] for c in CRITERIA) == expected
    assert keeps("success", rewards, 0) == (rewards[0] == 1)  # success alone judges the first turn


def test_conversations_weight_kept_turns_and_the_counts_add_up():
    tau = 0.4
    totals = dict.fromkeys(CRITERIA, 0)
    for rewards, expected in HAND_MADE:
        for c, n in zip(CRITERIA, expected):
            totals[c] += n
    for criterion in CRITERIA:
        stats = CollectStats(criterion=criterion)
        examples = [trajectory("Q?", [f"turn {i}" for i in range(len(r))], r, CollectConfig(criterion=criterion, tau=tau),
                               stats) for r, _ in HAND_MADE]
        assert stats.targets == totals  # every criterion's count, whichever trains
        for (rewards, _), ex in zip(HAND_MADE, examples):
            want = [math.exp(r / tau) if keeps(criterion, rewards, i) else 0.0 for i, r in enumerate(rewards)]
            if not any(want):
                assert ex is None  # nothing to learn from: no example
                continue
            msgs, weights = ex
            assert [m["role"] for m in msgs] == ["user"] + ["assistant", "user"] * (len(rewards) - 1) + ["assistant"]
            assert weights[1::2] == pytest.approx(want) and not any(weights[0::2])  # questions and feedback: context
            assert all("incorrect" in m["content"] for m in msgs[2::2])


def test_an_unknown_criterion_is_refused():
    with pytest.raises(ValueError, match="unknown criterion 'most'"):
        keeps("most", [0, 1], 1)
