from app.answers.checker import get_checker
from app.refine.vote import clusters, majority

EQ = get_checker("gsm8k").equivalent


def test_equivalent_spellings_share_a_vote():
    winner, votes = majority(["1,000", "1000", "999", "1000.0"], EQ)
    assert winner == "1,000" and votes == {"1,000": 3, "999": 1}


def test_ties_and_none():
    assert majority(["3", "4"], EQ, "first")[0] == "3"
    assert majority(["3", "4"], EQ, "last")[0] == "4"
    assert majority(["3", "4", "3", "4"], EQ, "last")[0] == "4"
    assert majority([None, None], EQ) == (None, {})
    assert clusters([None, "2", "2.0"], EQ) == [("2", [1, 2])]
