"""RISE end to end in miniature (CI): collect with the shipped model, fine-tune, evaluate, reload."""

import asyncio
import json

import pytest

from app.answers.checker import get_checker
from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.tasks import synthetic
from app.tasks.recheck import recheck
from app.training.collect import CollectConfig, collect, weight
from app.training.rise import main


@pytest.mark.parametrize("source", ["self", "solver", "recheck"])
def test_micro_rise_produces_a_loadable_model_and_metrics(tmp_path, model_path, source):
    out = tmp_path / f"rise-{source}"
    assert main(["--model", str(model_path), "--out", str(out), "--source", source, "--problems", "6",
                 "--iterations", "1", "--turns", "2", "--best-of", "2", "--eval-limit", "3", "--epochs", "1"]
                + (["--recipe", '{"level": ["easy", "expert"]}'] if source == "recheck" else [])) == 0  # a level mix
    history = json.loads((out / "iterations.json").read_text())
    assert history[0]["collect"]["problems"] == 6 and history[0]["collect"]["examples"] > 0
    assert 0.0 <= history[0]["eval"]["p1@t2"] <= 1.0
    assert (out / "model.safetensors").is_file() and (out / "training.json").is_file()

    async def go():
        e = HFEngine(out)
        try:
            return await e.generate([[{"role": "user", "content": "Sam has 2 pens. He buys 3 more. How many pens does Sam have now?"}]],
                                    SamplingParams(max_tokens=40))
        finally:
            await e.aclose()

    [[c]] = asyncio.run(go())
    assert "The answer is" in c.text


def test_collected_examples_are_weighted_by_reward(model_path):
    async def go():
        engine = HFEngine(model_path, max_batch_size=16)
        try:
            probs = synthetic.problems(3, 8, synthetic.LEVELS["expert"], "train")
            return await collect(engine, probs, get_checker("synthetic"),
                                 CollectConfig(source="solver", turns=2, temperature=1.0, seed=1))
        finally:
            await engine.aclose()

    examples, stats = asyncio.run(go())
    assert stats.problems == 8 and stats.examples == len(examples) > 0
    hi = weight(1, 0.4)
    for msgs, w in examples:
        assert msgs[0]["role"] == "user" and w[-1] == pytest.approx(hi)  # every target is a correct turn
        assert synthetic.ANSWER_RE.search(msgs[-1]["content"])
        if len(msgs) == 4 and msgs[1]["content"] != msgs[3]["content"]:  # a correction: the wrong attempt weighs 1 or less
            assert w[1] <= 1.0
    assert weight(0, 0.4) == 1.0 and weight(-1, 0.4) < 0.1 < 12 < hi < 12.2


def test_recheck_collection_needs_no_oracle_and_rechecks_every_turn(model_path):
    """Self-mode rollouts (the feedback says "incorrect" after every turn, right or wrong); each turn,
    right or wrong, is followed by the solver's re-check of exactly that attempt."""
    async def go():
        engine = HFEngine(model_path, max_batch_size=16)
        try:
            probs = synthetic.problems(3, 6, synthetic.LEVELS["expert"], "train")
            out = await collect(engine, probs, get_checker("synthetic"),
                                CollectConfig(source="recheck", turns=2, temperature=1.0, seed=1, tau=0.4, later=1.0))
            return probs, out
        finally:
            await engine.aclose()

    probs, (examples, stats) = asyncio.run(go())
    assert stats.turns == 12 and len(examples) == 12 + 6  # every turn, plus one later-turn conversation each
    by_question = {p.question: p for p in probs}
    hi = weight(1, 0.4)
    for msgs, w in examples:
        p = by_question[msgs[0]["content"]]
        assert len(msgs) == 4 and "incorrect" in msgs[2]["content"]
        assert msgs[3]["content"] == recheck(p) and w[3] == pytest.approx(hi)
        assert w[:3] == [0.0, 0.0, 0.0]  # the sampled attempt is context, never a target
    assert sum(stats.by_turn_correct.values()) == stats.kept_correct
    assert set(stats.flips) == {"t1>t2"}


def test_the_one_turn_baseline_trains_the_same_recheck_texts_on_bare_questions(model_path):
    """`--source recheck --single-turn` (issue 28's same-data baseline): as many examples as the RISE
    collection, each the bare question -> the same re-check text with a right turn's weight, and no
    rollout (an engine that is called fails the test)."""
    class NoRollout:
        async def generate(self, *a, **k):
            raise AssertionError("the one-turn baseline samples nothing")

    probs = synthetic.problems(3, 6, synthetic.LEVELS["expert"], "train")
    cfg = dict(source="recheck", turns=2, temperature=1.0, seed=1, tau=0.4, later=1.0)
    examples, stats = asyncio.run(collect(NoRollout(), probs, get_checker("synthetic"),
                                          CollectConfig(**cfg, single_turn=True)))
    assert stats.turns == 12 and len(examples) == 12 + 6  # the RISE collection's count (the test above)
    by_question = {p.question: p for p in probs}
    for msgs, w in examples:
        assert [m["role"] for m in msgs] == ["user", "assistant"] and w == [0.0, pytest.approx(weight(1, 0.4))]
        assert msgs[1]["content"] == recheck(by_question[msgs[0]["content"]])


def test_rise_train_single_turn_recheck_writes_one_turn_examples_only(tmp_path, model_path, monkeypatch):
    """End to end: the solver-written conversations become one-turn examples too; replay stays the
    RISE run's (first turns, anchored)."""
    from app.training import rise

    seen = []
    real = rise.encode_example
    monkeypatch.setattr(rise, "encode_example", lambda tok, m, w: seen.append(m) or real(tok, m, w))
    out = tmp_path / "one-turn"
    assert main(["--model", str(model_path), "--out", str(out), "--source", "recheck", "--single-turn",
                 "--problems", "4", "--iterations", "1", "--turns", "2", "--eval-limit", "2", "--epochs", "1",
                 "--replay", "0.5", "--anchor", "5", "--anchor-model", str(model_path),
                 "--recipe", '{"level": ["expert"], "solver_attempts": 2, "later": 1}']) == 0
    assert len(seen) == (4 * 2 + 4) + 8 + int(0.5 * 20)  # rollout-turn and later, solver-written, replay
    assert all(len(m) == 2 and m[0]["role"] == "user" and m[1]["role"] == "assistant" for m in seen)
    assert (out / "model.safetensors").is_file()
