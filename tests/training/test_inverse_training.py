"""Training on the inverse task family: `rise train rise --dataset inverse` (a fixed pool of training
problems, validation problems for --eval-limit, the task's solver), the rejection-sampling one-turn
baseline (`--single-turn`, `--max-examples`), and `rise train base --dataset inverse --shapes single`
(the first-turn fine-tune).

    .venv/bin/python -m pytest -q tests/training/test_inverse_training.py
"""

import random

import pytest

from app.answers.checker import get_checker
from app.tasks import datasets, inverse
from app.tasks.registry import get_task
from app.training.args import BASE_SHAPES, parse_base, parse_rise
from app.training.collect import CollectConfig, collect
from tests.fakes import FakeEngine


def _rise(model_path, tmp_path, *extra):
    return parse_rise(["--model", str(model_path), "--out", str(tmp_path / "o"), "--dataset", "inverse", *extra])


def test_rise_on_inverse_draws_a_fixed_training_pool_and_validates_on_validation(tmp_path, model_path):
    a = _rise(model_path, tmp_path, "--problems", "6", "--iterations", "2", "--eval-limit", "3",
              "--recipe", '{"level": ["medium"]}')
    assert a.task == "synthetic" and len(a.train_set) == 12
    assert all(isinstance(p, inverse.Problem) and p.solution for p in a.train_set)
    assert [p.question for p in a.train_set] == [p.question for p in inverse.problems(1234, 12, inverse.LEVELS["medium"], "train")]
    assert [(p.question, p.answer) for p in a.eval_set] == datasets.load("inverse", "validation", 3, level="medium")
    assert _rise(model_path, tmp_path, "--problems", "6", "--source", "solver").source == "solver"


@pytest.mark.parametrize("extra,message", [
    (["--source", "recheck"], "--source recheck needs"),
    (["--recipe", '{"later": 0.3}'], "takes only 'level'"),
    (["--single-turn", "--source", "solver"], "--single-turn samples the model"),
])
def test_what_does_not_apply_is_refused(tmp_path, model_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        _rise(model_path, tmp_path, *extra)
    assert e.value.code == 2 and message in capsys.readouterr().err


async def test_single_turn_collection_trains_right_first_turns_only():
    probs = inverse.problems(0, 3, inverse.LEVELS["medium"], "train")

    def respond(prompt, j, _call):  # sample 0 right, the others wrong; never a second turn
        assert len(prompt) == 1
        p = next(p for p in probs if p.question == prompt[0]["content"])
        return p.solution if j == 0 else inverse.corrupt(p, random.Random(j))

    engine = FakeEngine(respond)
    examples, stats = await collect(engine, probs, get_task("synthetic"),
                                    CollectConfig(source="self", best_of=4, single_turn=True, concurrency=1))
    assert len(examples) == 3 and stats.kept_correct == 3 and stats.wrong_turns == 9
    for msgs, w in examples:
        assert [m["role"] for m in msgs] == ["user", "assistant"] and w[0] == 0 and w[1] > 1
        assert get_checker("synthetic").is_correct(msgs[1]["content"], next(p.answer for p in probs
                                                                             if p.question == msgs[0]["content"]))


def test_base_fine_tune_takes_the_inverse_dataset_and_first_turns_only(tmp_path):
    a = parse_base(["--out", str(tmp_path / "b"), "--dataset", "inverse", "--shapes", "single"])
    assert (a.dataset, a.shapes) == ("inverse", ["single"])
    from app.training.base import SHAPES, base_conversation

    assert tuple(SHAPES) == BASE_SHAPES
    p = inverse.problems(0, 1, inverse.LEVELS["hard"], "train")[0]
    msgs, w = base_conversation(random.Random(0), p, shapes=["single"])
    assert msgs == [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}]
    rng = random.Random(1)
    fixes = [base_conversation(rng, p, shapes=["fix"]) for _ in range(5)]
    assert all(not inverse.check_steps(p, m[1]["content"]) and m[-1]["content"] == p.solution for m, _ in fixes)


def test_the_pipeline_of_scripts_train_inverse_sh_in_miniature(tmp_path, model_path):
    """First-turn fine-tune, RISE with --source self, the same-data one-turn baseline, rise eval: each
    step of scripts/train_inverse.sh on the shipped model, a few problems each."""
    import json

    from app.evaluation.cli import main as eval_main
    from app.training.base import main as base_main
    from app.training.rise import main as rise_main

    base = tmp_path / "base"
    assert base_main(["--init", str(model_path), "--dataset", "inverse", "--shapes", "single", "--levels", "medium",
                      "--steps", "2", "--batch-size", "4", "--workers", "0", "--lr", "1e-4", "--out", str(base)]) == 0
    assert json.loads((base / "training.json").read_text())["shapes"] == ["single"]
    common = ["--model", str(base), "--dataset", "inverse", "--recipe", '{"level": ["medium"]}', "--problems", "4",
              "--iterations", "1", "--turns", "2", "--best-of", "2", "--epochs", "1", "--batch-size", "4"]
    assert rise_main([*common, "--out", str(tmp_path / "rise"), "--source", "self", "--eval-limit", "2"]) == 0
    rise = json.loads((tmp_path / "rise" / "iterations.json").read_text())[0]
    assert rise["collect"]["problems"] == 4 and "m1@t2" in rise["eval"]
    assert rise_main([*common, "--out", str(tmp_path / "rft"), "--single-turn", "--max-examples", "1"]) == 0
    rft = json.loads((tmp_path / "rft" / "iterations.json").read_text())[0]
    assert rft["collect"]["turns"] == 8 and rft["collect"]["collected"] <= 8  # 4 problems x best-of 2, turn 1 only
    assert rft["collect"]["examples"] == min(1, rft["collect"]["collected"])  # what trained: --max-examples 1
    # a baseline of none (RISE kept no right sample): nothing trains, the model is the base
    assert rise_main([*common, "--out", str(tmp_path / "rft0"), "--single-turn", "--max-examples", "0"]) == 0
    none = json.loads((tmp_path / "rft0" / "iterations.json").read_text())[0]
    assert none["collect"]["examples"] == 0 and none["train"]["steps"] == 0
    out = tmp_path / "eval"
    assert eval_main(["--model", str(tmp_path / "rise"), "--dataset", "inverse", "--level", "medium", "--split",
                      "validation", "--limit", "2", "--turns", "2", "--seeds", "0", "--parallel", "2", "--out", str(out),
                      "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "inverse" and metrics["level"] == "medium" and metrics["n_problems"] == 2


def test_the_check_shape_trains_the_honest_check_of_a_wrong_attempt_and_nothing_before_it(model_path):
    """A wrong attempt as the answer, weighted from its "Check:" on: the forward check that does not match,
    and the answer it checked; its miscomputed inverse steps stay unweighted context."""
    from transformers import AutoTokenizer

    from app.training.base import base_conversation
    from app.training.data import encode_example

    tok = AutoTokenizer.from_pretrained(model_path)
    rng = random.Random(4)
    for p in inverse.problems(2, 10, inverse.LEVELS["hard"], split="validation"):
        msgs, w = base_conversation(rng, p, shapes=["check"])
        assert [m["role"] for m in msgs] == ["user", "assistant"] and w == [0.0, 1.0]
        attempt = msgs[1]["content"]
        assert ": no match." in attempt and not inverse.check_steps(p, attempt)
        ids, weights = encode_example(tok, msgs, w)
        assert ids == tok(tok.apply_chat_template(msgs, tokenize=False), add_special_tokens=False)["input_ids"]
        weighted = tok.decode([i for i, x in zip(ids, weights) if x > 0])
        assert weighted == attempt[attempt.index(inverse.CHECK):] + "<|end|>"


def test_the_check_shape_is_refused_where_solutions_have_no_check(tmp_path, capsys):
    from app.tasks import synthetic
    from app.training.base import base_conversation

    with pytest.raises(SystemExit):
        parse_base(["--out", str(tmp_path / "b"), "--shapes", "check"])
    assert "--shapes check needs --dataset inverse" in capsys.readouterr().err
    with pytest.raises(ValueError, match="inverse task's"):
        base_conversation(random.Random(0), synthetic.problems(0, 1)[0], shapes=["check"])
