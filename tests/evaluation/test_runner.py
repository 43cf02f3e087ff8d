"""p1 from the no-oracle run equals the oracle run's p1, on the shipped model; tokens per method."""

import asyncio
from dataclasses import replace

import pytest

from app.answers.checker import get_checker
from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.evaluation import metrics
from app.evaluation.runner import EvalConfig, Item, evaluate
from app.refine.loop import reference_oracle, refine
from app.refine.types import RefineConfig
from app.tasks import datasets

CHECK = get_checker("synthetic")
TURNS = 3


@pytest.fixture(scope="module")
def engine(model_path):
    e = HFEngine(model_path, max_batch_size=32)
    yield e
    asyncio.run(e.aclose())


@pytest.fixture(scope="module")
def items():
    return [Item(q, a) for q, a in datasets.load("synthetic", "test", 20, level="expert")]


async def test_the_oracle_run_repeats_the_self_runs_turns_on_the_shipped_model(engine, items):
    """Run both ways with the runner's seeds: the oracle's turns are the self run's turns up to the
    first correct one, word for word, so p1@tk = any correct among the self run's turns 1..k."""
    base = RefineConfig(max_turns=TURNS, sampling=SamplingParams(temperature=0.7, max_tokens=160))

    async def both(i: int, item: Item):
        cfg = replace(base, sampling=replace(base.sampling, seed=0 * 1_000_003 + i))
        return await asyncio.gather(refine(engine, item.question, CHECK, cfg),
                                    refine(engine, item.question, CHECK, cfg, oracle=reference_oracle(CHECK, item.reference)))

    runs = await asyncio.gather(*[both(i, it) for i, it in enumerate(items)])
    went_on = 0
    for (selfrun, oracle), item in zip(runs, items):
        self_texts = [t.text for t in selfrun.turns]
        assert [t.text for t in oracle.turns] == self_texts[:len(oracle.turns)]
        correct = metrics.correctness([[t.answer for t in selfrun.turns]], [item.reference], CHECK.equivalent)
        from_self = metrics.p1_vectors(correct, TURNS)
        from_oracle = metrics.p1_vectors([[bool(t.correct) for t in oracle.turns]], TURNS)
        assert from_self == from_oracle
        went_on += len(oracle.turns) > 1
    assert went_on >= 2  # the equality was tested past turn 1, not only on problems solved at once


async def test_the_runner_checks_itself_with_oracle_run_and_counts_tokens(engine, items):
    result = await evaluate(engine, items, CHECK, EvalConfig(turns=TURNS, seeds=(0,), parallel_samples=2, oracle_run=True),
                            progress=False)
    seed = result["per_seed"]["0"]
    assert seed["oracle_check"] == {"problems": 20, "p1_differs": 0} and seed["p1_source"] == "oracle run"
    tok = result["tokens"]
    # every sample of the parallel baseline sees the same prompt as turn 1
    assert tok["m2@t1"]["prompt"] == 2 * tok["m1@t1"]["prompt"] > 0
    assert tok["m1@t1"]["total"] < tok["m1@t2"]["total"] < tok["m1@t3"]["total"]
    assert tok["p1@t1"] == tok["m1@t1"]
    if result["summary"]["p1@t1"]["mean"] > 0:  # the oracle stops at those, so p1 costs less than m1 at k = 3
        assert tok["p1@t3"]["total"] < tok["m1@t3"]["total"]
