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


def test_token_costs_count_the_turns_each_method_runs():
    # problem 1: right at turn 2; problem 2: never right. (prompt, completion) per turn
    turns = [[(10, 5), (30, 6), (30, 7)], [(12, 4), (40, 4), (40, 4)]]
    correct = [[False, True, True], [False, False, False]]
    samples = [[(10, 5)] * 5, [(12, 4)] * 5]
    cost = metrics.token_costs(turns, correct, samples, turns=3)
    assert cost["m1@t1"] == {"total": (15 + 16) / 2, "completion": 4.5, "prompt": 11.0}
    assert cost["m1@t3"]["total"] == (10 + 5 + 30 + 6 + 30 + 7 + 12 + 4 + 40 + 4 + 40 + 4) / 2
    # p1 stops at the first correct turn: problem 1 runs 2 turns even when k = 3
    assert cost["p1@t3"]["total"] == (10 + 5 + 30 + 6 + 12 + 4 + 40 + 4 + 40 + 4) / 2
    assert cost["p1@t1"] == cost["m1@t1"]
    assert cost["m5@t1"] == {"total": 5 * (15 + 16) / 2, "completion": 5 * 4.5, "prompt": 5 * 11.0}


def test_p1_from_the_self_run_is_any_correct_turn_so_far():
    refs = ["2", "3"]
    answers = [["1", "2", "1"], ["5", None, "4"]]
    correct = metrics.correctness(answers, refs, EQ)
    assert correct == [[False, True, False], [False, False, False]]
    p1 = metrics.p1_vectors(correct, 3)
    assert p1 == {"p1@t1": [0.0, 0.0], "p1@t2": [1.0, 0.0], "p1@t3": [1.0, 0.0]}
    flow = metrics.flow_vectors(answers, refs, EQ, 3)
    assert flow["t2->t3/right_to_wrong"] == [1.0, 0.0] and flow["t1->t2/answer_changed"] == [1.0, 1.0]


async def test_the_runner_summarizes_over_problems_and_keeps_per_problem_records():
    from app.evaluation.runner import EvalConfig, Item, evaluate
    from tests.fakes import FakeEngine

    items = [Item("Sam has 3 apples. He buys 4 more. How many apples does Sam have now?", "7"),
             Item("Mia has 2 pens. She buys 2 more. How many pens does Mia have now?", "5")]
    engine = FakeEngine(lambda _p, _j, _c: "3+4=7. The answer is 7.")
    result = await evaluate(engine, items, get_checker("synthetic"), EvalConfig(turns=2, seeds=(0, 1), parallel_samples=3),
                            progress=False)
    s = result["summary"]["m1@t2"]
    assert (s["mean"], s["n"], s["seeds"]) == (0.5, 2, 2)  # n = problems, not problems x seeds
    assert result["records"]["1"]["p1@t2"] == [1.0, 0.0]
    assert result["flow"]["turn_accuracy"]["t2"]["mean"] == 0.5
    assert result["paired"]["m1@t2 - m3@t1"]["diff"] == 0.0
    assert result["tokens"]["m3@t1"]["completion"] == 3 * result["tokens"]["m1@t1"]["completion"] > 0
    assert "m1@t2 (tie last)" not in result["summary"] and "p1" in result["p1_source"]
