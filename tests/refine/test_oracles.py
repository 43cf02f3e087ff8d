"""The oracle protocol in the loop (app/refine/oracles.py): verdicts, unchecked turns, an oracle's own
feedback and the request's template in the prompt the engine saw; and, on the real embedded engine
with a real verifier HTTP server, the verifier's feedback in the next turn's prompt.

    .venv/bin/python -m pytest -q tests/refine/test_oracles.py
"""

import asyncio

import pytest

from app.answers.checker import get_checker
from app.engines.hf import HFEngine
from app.refine.feedback import DEFAULT_FEEDBACK
from app.refine.loop import refine
from app.refine.oracles import ReferenceOracle, Verdict, reference_oracle
from app.refine.types import RefineConfig
from app.verifiers.endpoints import VerifierEndpoint
from app.verifiers.registry import Verifiers
from tests.fakes import FakeEngine, scripted
from tests.verifier_server import FEEDBACK, VerifierServer

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
CHECK = get_checker("synthetic")


class Scripted:
    """An oracle answering with the verdicts given, one per call."""

    def __init__(self, verdicts):
        self.verdicts, self.seen = list(verdicts), []

    async def judge(self, question, answer, text, turn):
        self.seen.append((question, answer, turn))
        return self.verdicts.pop(0)


async def test_verdicts_drive_the_loop_and_the_oracles_feedback_follows_its_turn():
    engine = FakeEngine(scripted(["1", "2", "3"]))
    oracle = Scripted([Verdict(False, "Check the subtraction."), Verdict(False), Verdict(True)])
    r = await refine(engine, Q, CHECK, RefineConfig(max_turns=5), oracle=oracle)
    assert r.stop_reason == "correct" and r.final_turn == 3 and r.correct is True
    assert oracle.seen == [(Q, "1", 1), (Q, "2", 2), (Q, "3", 3)]
    assert engine.prompts[1][-1]["content"] == "Check the subtraction."  # the oracle's own feedback
    assert engine.prompts[2][-1]["content"] == DEFAULT_FEEDBACK.format(question=Q)  # none given: RISE's sentence
    assert [t.feedback for t in r.turns] == ["Check the subtraction.", DEFAULT_FEEDBACK.format(question=Q), None]
    assert r.turns[0].to_dict()["checked"] is True and r.turns[0].samples[0].feedback == "Check the subtraction."


async def test_an_unchecked_turn_goes_on_as_without_an_oracle():
    engine = FakeEngine(scripted(["1", "2"]))
    r = await refine(engine, Q, CHECK, RefineConfig(max_turns=2), oracle=Scripted([Verdict(None), Verdict(None)]))
    assert r.stop_reason == "max_turns" and r.oracle and r.correct is None
    assert [t.to_dict()["checked"] for t in r.turns] == [False, False]
    assert engine.prompts[1][-1]["content"] == DEFAULT_FEEDBACK.format(question=Q)


async def test_the_requests_template_replaces_rises_sentence_and_full_window_keeps_each_turns_feedback():
    engine = FakeEngine(scripted(["1", "2", "3"]))
    config = RefineConfig(max_turns=3, window="full", feedback="Not quite. Again: {question}")
    await refine(engine, Q, CHECK, config, oracle=Scripted([Verdict(False, "first"), Verdict(False), Verdict(False)]))
    assert [m["content"] for m in engine.prompts[2] if m["role"] == "user"] == [Q, "first", f"Not quite. Again: {Q}"]


async def test_the_reference_is_an_oracle_and_plain_functions_still_are():
    oracle = reference_oracle(CHECK, "40")
    assert isinstance(oracle, ReferenceOracle) and "40" not in repr(oracle)
    assert await oracle.judge(Q, "40", "The answer is 40.", 1) == Verdict(True)
    r = await refine(FakeEngine(scripted(["7", "9"])), Q, CHECK, RefineConfig(max_turns=3),
                     oracle=lambda answer, _text: answer == "9")
    assert r.stop_reason == "correct" and r.final_turn == 2


@pytest.fixture(scope="module")
def hf(model_path):
    e = HFEngine(model_path, max_batch_size=8)
    yield e
    asyncio.run(e.aclose())


class Recording:
    """The real engine, with every prompt it was given kept."""

    def __init__(self, engine):
        self.engine, self.prompts = engine, []

    @property
    def info(self):
        return self.engine.info

    async def generate(self, prompts, params, on_delta=None):
        self.prompts += [[dict(m) for m in p] for p in prompts]
        return await self.engine.generate(prompts, params, on_delta)


async def test_a_verifiers_feedback_reaches_the_prompt_the_real_engine_saw(hf):
    engine = Recording(hf)
    with VerifierServer() as server:
        registry = Verifiers({"wrong": VerifierEndpoint(url=f"{server.url}/wrong")})
        try:
            r = await refine(engine, Q, CHECK, RefineConfig(max_turns=2), oracle=registry.oracle("wrong", {}))
        finally:
            await registry.aclose()
    assert len(engine.prompts) == 2 and r.turns[0].correct is False
    assert engine.prompts[1][-1] == {"role": "user", "content": FEEDBACK}
    assert engine.prompts[1][-2] == {"role": "assistant", "content": r.turns[0].text}
    assert [c[1]["turn"] for c in server.calls] == [1, 2]
