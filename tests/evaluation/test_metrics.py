from app.answers.checker import get_checker
from app.evaluation import metrics

EQ = get_checker("synthetic").equivalent


def test_p1_counts_any_correct_turn_up_to_k():
    m = metrics.p1_at([[True], [False, True], [False, False, False]], 3)
    assert [m[f"p1@t{k}"]["mean"] for k in (1, 2, 3)] == [round(1 / 3, 4), round(2 / 3, 4), round(2 / 3, 4)]
    assert m["p1@t1"]["n"] == 3 and m["p1@t1"]["se"] > 0


def test_m1_votes_over_turns_with_both_tie_rules():
    answers = [["1", "2", "2"], ["5", "4", "3"]]
    refs = ["2", "3"]
    first = metrics.m1_at(answers, refs, EQ, 3, "first")
    last = metrics.m1_at(answers, refs, EQ, 3, "last")
    assert first["m1@t1"]["mean"] == 0.0 and first["m1@t3"]["mean"] == 0.5  # 3-way tie -> "5"
    assert last["m1@t3"]["mean"] == 1.0  # 3-way tie -> "3"


def test_parallel_baselines_and_flow():
    samples = [["1", "2", "2", "2", "9"], ["7", "7", "7", "8", "8"]]
    refs = ["2", "8"]
    assert metrics.m_at_t1(samples, refs, EQ)["m5@t1"]["mean"] == 0.5
    p = metrics.pass_at(samples, refs, EQ)
    assert p["pass@1"]["mean"] == 0.0 and p["pass@2"]["mean"] == 0.5 and p["pass@4"]["mean"] == 1.0
    f = metrics.flow([["1", "2"], ["3", "4"]], ["2", "3"], EQ, 2)
    assert f["t1->t2"]["wrong_to_right"]["mean"] == 0.5 and f["t1->t2"]["right_to_wrong"]["mean"] == 0.5
    assert f["turn_accuracy"]["t2"]["mean"] == 0.5


async def test_questions_too_long_for_the_model_count_as_wrong_and_are_reported():
    from app.evaluation.runner import EvalConfig, Item, evaluate
    from tests.refine.test_loop import ContextLimited

    long_q = "Sam has 3 apples. " * 40 + "How many apples does Sam have now?"
    items = [Item("Sam has 3 apples. He buys 4 more. How many apples does Sam have now?", "7"), Item(long_q, "3")]
    engine = ContextLimited(lambda _p, _j, _c: "3+4=7. The answer is 7.", limit=400)
    cfg = EvalConfig(turns=2, seeds=(0,), parallel_samples=2)
    result = await evaluate(engine, items, get_checker("synthetic"), cfg, progress=False)
    seed = result["per_seed"]["0"]
    assert seed["question_too_long"] == 1
    assert result["summary"]["p1@t2"]["mean"] == 0.5 and result["summary"]["m1@t2"]["mean"] == 0.5
    assert seed["flow"]["turn_accuracy"]["t2"]["mean"] == 0.5
