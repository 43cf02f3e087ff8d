"""Answer extraction and equivalence per task family (`app.answers.checker`, over math-verify),
and the small protocol the loop depends on (`app.answers.protocol`).

    from app.answers.checker import get_checker
    checker = get_checker("gsm8k")
    checker.equivalent(checker.extract("So she has $1,000 left."), "1000")   # True
"""
