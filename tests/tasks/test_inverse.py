"""The inverse task family: the end of a chain is given, its start asked. Exact solver, forward
checker, splits disjoint by structure, and the same answer format (and tokenizer) as the synthetic task.

    .venv/bin/python -m pytest -q tests/tasks/test_inverse.py
"""

import random

import pytest

from app.answers.checker import get_checker
from app.tasks import datasets, files, inverse as I, synthetic as S
from app.tasks.registry import get_task

CHECK = get_checker("synthetic")


def test_generation_is_reproducible_and_reads_as_an_inverse_question():
    a, b = I.problems(3, 20), I.problems(3, 20)
    assert [p.question for p in a] == [p.question for p in b] != [p.question for p in I.problems(4, 20)]
    for p in a:
        assert " has some " in p.question and f"Now {p.question.split()[0]} has {p.end} " in p.question
        assert p.question.endswith("have at the start?") and str(p.start) not in p.question.split(".")[0]


@pytest.mark.parametrize("level", list(I.LEVELS))
def test_the_solver_inverts_the_chain_exactly(level):
    d = I.LEVELS[level]
    for p in I.problems(1, 300, d, "train"):
        assert d.min_steps <= len(p.ops) <= d.max_steps and all(k <= 9 for op, k in p.ops if op == "*")
        value = p.end
        for step, (op, k) in zip(p.steps, reversed(p.ops)):  # the operations undone, last first
            assert step.left == value and step.operand == k and step.op == I.INVERSE[op]
            if step.op == "/":
                assert step.left % k == 0
            value = eval(f"{step.left}{step.op}{step.operand}")  # noqa: S307 - digits and one operator
            assert value == step.result >= 0
        assert value == p.start and I.check(p, p.start)
        assert CHECK.is_correct(p.solution, p.answer) and I.check_steps(p, p.solution)
        assert p.solution.endswith(f"{p.end} vs {p.end}: match. The answer is {p.start}.")


def test_checking_runs_the_chain_forward():
    p = I.Problem("q", 19, [("*", 4), ("+", 17)], 93, I.solve(93, [("*", 4), ("+", 17)]))
    assert p.solution == "93-17=76. 76/4=19. Check: 19*4=76. 76+17=93. 93 vs 93: match. The answer is 19."
    assert I.check(p, 19) and not I.check(p, 18) and not I.check(p, 20)
    assert I.forward_check(p, 18) == "Check: 18*4=72. 72+17=89. 89 vs 93: no match."
    with pytest.raises(ValueError, match="not a multiple"):
        I.solve(94, [("*", 4), ("+", 17)])


def test_step_check_rejects_lucky_answers_and_wrong_checks():
    p = I.Problem("q", 19, [("*", 4), ("+", 17)], 93, I.solve(93, [("*", 4), ("+", 17)]))
    assert I.check_steps(p, "93-17=76. 76/4=19. The answer is 19.")  # no check written: the steps alone
    assert not I.check_steps(p, "93-17=75. 76/4=19. The answer is 19.")  # right answer, a wrong step
    assert not I.check_steps(p, "93-17=76. 76/4=19. Check: 19*4=76. 76+17=92. It matches. The answer is 19.")
    assert not I.check_steps(p, "93-17=76. 76/4=19. The answer is 18.")


def test_a_wrong_attempt_is_checked_honestly_and_corrected_exactly():
    rng = random.Random(5)
    for p in I.problems(2, 200, I.LEVELS["hard"], "train"):
        wrong = I.corrupt(p, rng)
        answer = int(CHECK.extract(wrong))
        assert answer != p.start and not I.check(p, answer) and not I.check_steps(p, wrong)
        assert I.forward_check(p, answer) in wrong
        assert f"{I.forward(answer, p.ops)[-1].result} vs {p.end}: no match." in wrong
        assert I.check_steps(p, I.minimal_correction(p, wrong))


def test_splits_never_share_a_structure_and_agree_with_the_synthetic_task():
    rng = random.Random(0)
    key = lambda p: S.structure(p.start, p.ops)  # noqa: E731
    train = {key(I.generate(rng, I.LEVELS["easy"], "train")) for _ in range(3000)}
    val = {key(p) for p in I.problems(1, 1000, I.LEVELS["easy"], "validation")}
    test = I.problems(0, 1000, I.LEVELS["easy"], "test")
    assert train and val and not (train & val) and not (train & {key(p) for p in test}) and not (val & {key(p) for p in test})
    assert all(S.split_of(p) == "test" for p in test)  # held out by the synthetic task's rule as well
    with pytest.raises(ValueError, match="split must be one of"):
        I.generate(rng, I.LEVELS["easy"], "dev")


def test_the_shipped_tokenizer_covers_the_format(model_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    vocab = tok.get_vocab()
    assert all(d in vocab for d in "0123456789/*+-=.:")
    longest = 0
    for level, d in I.LEVELS.items():
        for p in I.problems(7, 200, d, "train"):
            for text in (p.question, p.solution):
                ids = tok(text, add_special_tokens=False)["input_ids"]
                assert tok.unk_token_id is None or tok.unk_token_id not in ids
                assert tok.decode(ids) == text
            longest = max(longest, len(tok(p.solution, add_special_tokens=False)["input_ids"]))
    assert longest <= 160  # fits a turn at rise eval's and rise train rise's default --max-tokens


def test_the_synthetic_task_checks_and_solves_inverse_problems():
    task = get_task("synthetic")
    p = I.problems(3, 1, I.LEVELS["expert"], "train")[0]
    lucky = p.solution.replace(f"{p.steps[0].result}.", f"{p.steps[0].result + 1}.", 1)
    assert task.checker.is_correct(lucky, p.answer) and not task.steps_ok(p, lucky)
    assert task.steps_ok(p, p.solution) and task.solve(p, I.corrupt(p, random.Random(0))) == p.solution


def test_inverse_is_a_dataset_of_rise_eval_and_rise_train():
    pairs = datasets.load("inverse", "validation", 5, level="medium")
    probs = I.problems(datasets.default_problem_seed("validation"), 5, I.LEVELS["medium"], "validation")
    assert pairs == [(p.question, p.answer) for p in probs] and datasets.FAMILY["inverse"] == "synthetic"
    assert datasets.SPLITS["inverse"] == ("train", "validation", "test")
    assert files.parse_spec("inverse") == ("inverse", None) and files.builtin_task("inverse") == "synthetic"
