"""`rise refine` has the options of `POST /v1/refine` (early stopping, a token budget, confidence
votes, a built-in verifier, a feedback template) and `--json` prints the object that route answers;
on the shipped model, through `main` in this process (tests/cli.py).

    .venv/bin/pytest -q -n 0 tests/test_refine_cli_options.py
"""

import json

import pytest

from app.api.protocol_refine import RefineResponse
from tests.cli import rise_here as rise
from tests.test_cli import Q


def refine_json(*args) -> dict:
    return json.loads(rise("refine", Q, *args, "--json").stdout)


def test_json_is_the_object_v1_refine_answers():
    r = refine_json("--turns", "2")
    RefineResponse.model_validate(r)  # the route's own response model
    assert set(r) == set(RefineResponse.model_fields)
    assert r["id"].startswith("rr-") and r["object"] == "refinement" and r["model"] == "rise-synth"
    assert r["turns"][0]["feedback"].startswith("The answer is incorrect.") and "samples" in r["turns"][0]


def test_early_stop_budget_confidence_and_feedback():
    r = refine_json("--turns", "5", "--early-stop", "agree", "--agree-turns", "2", "--aggregation", "confidence",
                    "--feedback", "Check it again. {question}")
    assert r["stop_reason"] == "agreed" and len(r["turns"]) == 2  # greedy: the same answer twice
    assert r["aggregation"] == "confidence" and r["vote_weights"] and r["final_answer"] == "31"
    assert r["turns"][0]["feedback"] == f"Check it again. {Q}"
    r = refine_json("--turns", "5", "--max-total-tokens", "40")
    assert r["stop_reason"] == "budget" and r["usage"]["completion_tokens"] <= 40


def test_a_built_in_verifier_is_the_oracle():
    r = refine_json("--turns", "3", "--verifier", "numeric", "target=31", "tolerance=0.5")
    assert r["mode"] == "oracle" and r["stop_reason"] == "correct" and r["correct"] is True
    r = refine_json("--turns", "2", "--verifier", '{"name": "contains", "value": "no such text"}')
    assert r["mode"] == "oracle" and r["stop_reason"] == "max_turns" and r["correct"] is False


def test_several_samples_are_sampled_by_default():
    """Left out, --samples 4 runs at RISE_SAMPLED_TEMPERATURE (0.7): the same draws as asking for it,
    and not all alike (an expert problem, where the model is unsure)."""
    hard = ("Ana has 68 marbles. She ends up with 26 times as many. Then she buys 91 more. "
            "How many marbles does Ana have now?")
    texts = [[s["text"] for s in json.loads(rise("refine", hard, "--turns", "1", "--samples", "4", "--seed", "3",
                                                 *extra, "--json").stdout)["turns"][0]["samples"]]
             for extra in ((), ("--temperature", "0.7"))]
    assert texts[0] == texts[1] and len(set(texts[0])) > 1


@pytest.mark.parametrize("args,message", [
    (["--samples", "3", "--temperature", "0"], "(--samples) identical"),
    (["--early-stop", "agree", "--reference", "31"], "--early-stop applies only without an oracle"),
    (["--reference", "31", "--verifier", "numeric", "target=31"], "not both"),
    (["--early-stop", "agree", "--agree-turns", "4", "--turns", "3"], "argument --agree-turns"),
    (["--max-total-tokens", "2", "--samples", "3", "--temperature", "1"], "argument --max-total-tokens"),
    (["--feedback", "Try again."], "must contain {question}"),
    (["--verifier", "numeric", "target=abc"], "argument --verifier: target"),
    (["--verifier", "numeric", "target"], "not KEY=VALUE"),
    (["--verifier", "nope"], "unknown verifier 'nope'"),
    (["--aggregation", "loudest"], "--aggregation"),
    (["--early-stop", "soon"], "--early-stop"),
])
def test_bad_options_exit_2_naming_them(args, message):
    p = rise("refine", Q, *args, check=False)
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
