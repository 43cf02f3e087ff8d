"""`rise eval --compute`: every method from one rollout per problem, on constructed rollouts and on
the shipped model."""

import json
import math

from app.answers.checker import get_checker
from app.evaluation.cli import main
from app.evaluation.compute import Rollout, evaluate_methods, pareto
from app.refine.types import Sample, Turn

CHECK = get_checker("synthetic")


def _sample(answer, tokens=10, logp=-0.01):
    return Sample(f"The answer is {answer}.", answer, None, 20, tokens, "stop", None, [logp] * tokens)


def _turns(*answers, logp=-0.01):
    return [Turn(k + 1, [_sample(a, logp=logp)], 0, 0.1, 0.01) for k, a in enumerate(answers)]


async def test_methods_are_prefixes_of_one_rollout():
    runs = [Rollout(_turns("4", "4", "4", "4", "4"), [_sample("4"), _sample("5"), _sample("5")], "4"),
            Rollout(_turns("3", "5", "5", "5", "5", logp=-1.0), [_sample("5")] * 3, "5")]
    rows = {r["method"]: r for r in await evaluate_methods(runs, CHECK, turns=5, parallel=3)}
    assert rows["fixed K=1"]["accuracy"] == 0.5 and rows["fixed K=1"]["tokens_per_problem"] == 10
    assert rows["fixed K=5"]["accuracy"] == 1.0 and rows["fixed K=5"]["tokens_per_problem"] == 50
    assert rows["parallel N=3"]["accuracy"] == 0.5  # the first run's 5, 5 outvote its 4
    # run 2's "3" then "5": RISE's m1 gives the tie to turn 1, the served default to turn 2
    assert rows["fixed K=2"]["accuracy"] == 0.5 and rows["fixed K=2 tie-last"]["accuracy"] == 1.0
    assert rows["fixed K=2 tie-last"]["tokens_per_problem"] == 20 and "fixed K=1 tie-last" not in rows
    assert rows["agree(2) K=5"]["turns_per_problem"] == 2.5  # stops at 2 and at 3
    assert rows["settled K=5"]["turns_per_problem"] == 3.5  # 3-0 after three turns; 3-1 after four
    sure = rows["confident(mean>=0.9) K=5"]  # run 1 is sure at turn 1; run 2 never is
    assert sure["turns_per_problem"] == (1 + 4) / 2 and sure["accuracy"] == 1.0
    assert {"confidence-vote(mean) K=5", "confidence-vote(min) N=3"} <= set(rows)
    assert all(math.isfinite(r["se"]) for r in rows.values())


async def test_early_stopping_rules_vote_as_served_ties_to_the_later_turn():
    runs = [Rollout(_turns("1", "2", "1", "3", "3"), [_sample("1")], "3")]  # agree(2) stops at turn 5: 1, 3 tie
    rows = {r["method"]: r for r in await evaluate_methods(runs, CHECK, turns=5, parallel=1)}
    assert rows["agree(2) K=5"]["turns_per_problem"] == 5 and rows["agree(2) K=5"]["accuracy"] == 1.0
    assert rows["fixed K=5"]["accuracy"] == 0.0 and rows["fixed K=5 tie-last"]["accuracy"] == 1.0


def test_pareto_keeps_only_undominated_rows():
    rows = [{"method": "a", "accuracy": 0.6, "tokens_per_problem": 10}, {"method": "b", "accuracy": 0.7, "tokens_per_problem": 50},
            {"method": "c", "accuracy": 0.6, "tokens_per_problem": 30}, {"method": "d", "accuracy": 0.65, "tokens_per_problem": 20}]
    assert [r["method"] for r in pareto(rows)] == ["a", "d", "b"]


def test_compute_on_the_shipped_model_writes_rows_and_plot(tmp_path, model_path):
    out = tmp_path / "compute"
    assert main(["--compute", "--model", str(model_path), "--limit", "4", "--turns", "2", "--parallel", "2",
                 "--seeds", "0", "--level", "easy", "--split", "train", "--problem-seed", "7", "--out", str(out),
                 "--no-progress"]) == 0
    result = json.loads((out / "compute.json").read_text())
    rows = {r["method"]: r for r in result["rows"]}
    assert {"fixed K=1", "fixed K=2", "parallel N=2", "agree(2) K=2", "settled K=2"} <= set(rows)
    for r in rows.values():
        assert set(r) == {"method", "accuracy", "se", "n", "seeds", "vs_fixed", "tokens_per_problem",
                          "turns_per_problem"} and r["n"] == 4
    records = json.loads((out / "compute_per_problem.json").read_text())
    assert len(records["problem_ids"]) == 4 and len(records["seeds"]["0"]["settled K=2"]) == 4
    assert rows["fixed K=2"]["vs_fixed"]["diff"] == 0.0
    assert rows["fixed K=1"]["accuracy"] == rows["parallel N=1"]["accuracy"]  # the same first sample
    assert rows["fixed K=2"]["tokens_per_problem"] >= rows["agree(2) K=2"]["tokens_per_problem"]
    assert result["pareto"] and (out / "compute.png").stat().st_size > 1000


async def test_errors_are_over_problems_with_seeds_averaged_and_rules_are_paired_with_fixed_k():
    # 2 problems x 2 seeds (runs seed-major): problem 1 right in both seeds, problem 2 wrong in both
    right = Rollout(_turns("4", "4"), [_sample("4")], "4")
    wrong = Rollout(_turns("3", "3", logp=-1.0), [_sample("3")], "4")
    rows = {r["method"]: r for r in await evaluate_methods([right, wrong, right, wrong], CHECK, turns=2, parallel=1,
                                                           seeds=2)}
    k1 = rows["fixed K=1"]
    # per-problem means 1 and 0: SE = sd / sqrt(2 problems) = 0.5, not sqrt(p(1-p)/4 runs) = 0.25
    assert (k1["accuracy"], k1["se"], k1["n"], k1["seeds"]) == (0.5, 0.5, 2, 2)
    assert rows["fixed K=2"]["vs_fixed"] == {"against": "fixed K=2", "diff": 0.0, "se": 0.0, "z": None, "n": 2}
    assert rows["parallel N=1"]["vs_fixed"]["diff"] == 0.0
    # a rule that gets problem 2 right in one seed only: +0.25 per problem on average, paired
    flip = Rollout(_turns("3", "4", logp=-1.0), [_sample("4")], "4")
    rows = {r["method"]: r for r in await evaluate_methods([right, wrong, right, flip], CHECK, turns=2, parallel=1,
                                                           seeds=2)}
    d = rows["fixed K=2 tie-last"]["vs_fixed"]
    assert (d["diff"], d["n"]) == (0.25, 2) and d["se"] == 0.25 and d["z"] == 1.0
