"""Adaptive compute on constructed traces (a scripted engine): each early-stopping rule's decision,
token budgets, and confidence-weighted votes."""

import math

import pytest

from app.answers.checker import get_checker
from app.engines.base import Completion, SamplingParams
from app.refine import policy
from app.refine.loop import refine
from app.refine.types import RefineConfig
from tests.fakes import FakeEngine

CHECK = get_checker("synthetic")


class ConfidentEngine(FakeEngine):
    """Turn k answers answers[k-1] with every token's log-prob logps[k-1] (None: no log-probs)."""

    def __init__(self, answers, logps=None, per_sample=None):
        super().__init__(lambda _p, j, call: f"Some steps. The answer is {self._answer(call, j)}.")
        self.answers, self.logps, self.per_sample = answers, logps, per_sample

    def _answer(self, call, j):
        if self.per_sample is not None:
            return self.per_sample[min(call, len(self.per_sample) - 1)][j][0]
        return self.answers[min(call, len(self.answers) - 1)]

    def _logp(self, call, j):
        if self.per_sample is not None:
            return self.per_sample[min(call, len(self.per_sample) - 1)][j][1]
        return None if self.logps is None else self.logps[min(call, len(self.logps) - 1)]

    async def generate(self, prompts, params, on_delta=None):
        call = self.calls
        out = await super().generate(prompts, params, on_delta)
        for row in out:
            for j, c in enumerate(row):
                lp = self._logp(call, j)
                if params.logprobs and lp is not None:
                    c.token_logprobs = [lp] * c.completion_tokens
        return out


def cfg(**kw):
    return RefineConfig(**{"max_turns": 5, **kw})


async def _run(engine, **kw):
    return await refine(engine, "q", CHECK, cfg(**kw))


def test_confidence_forms_by_hand():
    lps = [-0.1, -0.2, -3.0] + [-0.05] * 10
    assert policy.confidence(lps, "mean") == pytest.approx(math.exp(sum(lps) / len(lps)))
    assert policy.confidence(lps, "tail") == pytest.approx(math.exp(-0.05))
    assert policy.confidence(lps, "min") == pytest.approx(math.exp(-3.0))
    assert policy.confidence([], "mean") is None and policy.confidence(None) is None


async def test_no_rule_runs_every_turn():
    r = await _run(ConfidentEngine(["4"]))
    assert r.stop_reason == "max_turns" and len(r.turns) == 5


async def test_agree_stops_once_the_last_turns_agree():
    r = await _run(ConfidentEngine(["4", "5", "5", "6"]), early_stop="agree", agree_turns=2)
    assert r.stop_reason == "agreed" and len(r.turns) == 3 and r.final_answer == "5"
    r = await _run(ConfidentEngine(["4", "5", "5", "5"]), early_stop="agree", agree_turns=3)
    assert r.stop_reason == "agreed" and len(r.turns) == 4
    r = await _run(ConfidentEngine(["4", "5", "4", "5", "4"]), early_stop="agree")
    assert r.stop_reason == "max_turns" and len(r.turns) == 5


async def test_unparseable_answers_never_agree():
    engine = FakeEngine(lambda _p, _j, _c: "I do not know.")
    r = await refine(engine, "q", CHECK, cfg(early_stop="agree"))
    assert r.stop_reason == "max_turns" and len(r.turns) == 5


async def test_settled_stops_when_the_remaining_votes_cannot_change_the_winner():
    r = await _run(ConfidentEngine(["4", "4", "4", "9"]), early_stop="settled")
    assert r.stop_reason == "settled" and len(r.turns) == 3  # 3 votes to 0, 2 turns left
    r = await _run(ConfidentEngine(["4", "5", "4", "4"]), early_stop="settled")
    assert r.stop_reason == "settled" and len(r.turns) == 4  # 3 to 1, 1 turn left
    r = await _run(ConfidentEngine(["4", "5", "4", "5", "4"]), early_stop="settled")
    assert r.stop_reason == "max_turns"


async def test_confident_stops_on_a_sure_turn_or_else_once_settled():
    r = await _run(ConfidentEngine(["4", "5"], logps=[-0.01, -2.0]), early_stop="confident", confidence_threshold=0.9)
    assert r.stop_reason == "confident" and len(r.turns) == 1
    assert r.turns[0].samples[0].confidence == pytest.approx(math.exp(-0.01))
    r = await _run(ConfidentEngine(["4", "4", "4", "5"], logps=[-2.0]), early_stop="confident", confidence_threshold=0.9)
    assert r.stop_reason == "settled" and len(r.turns) == 3  # unsure turns: as `settled`


async def test_budget_ends_the_loop_and_is_never_exceeded():
    engine = ConfidentEngine(["4"])  # 6 tokens a sample ("Some steps. The answer is 4.")
    r = await refine(engine, "q", CHECK, cfg(max_total_tokens=12, samples_per_turn=1,
                                             sampling=SamplingParams(max_tokens=100)))
    assert r.stop_reason == "budget" and r.completion_tokens <= 12
    assert [p.max_tokens for p in engine.params] == [12, 6]  # each turn's cap is what is left


def test_bad_rules_and_budgets_are_refused():
    for bad in [dict(early_stop="sometimes"), dict(early_stop="agree", agree_turns=1),
                dict(early_stop="agree", agree_turns=6), dict(max_total_tokens=0),
                dict(max_total_tokens=2, samples_per_turn=3), dict(aggregation="loudest")]:
        with pytest.raises(ValueError):
            cfg(**bad)


async def test_confidence_votes_outweigh_a_less_sure_majority():
    engine = ConfidentEngine(["4", "4", "7", "7", "7"], logps=[-0.01, -0.01, -3.0, -3.0, -3.0])
    majority = await _run(engine)
    assert majority.final_answer == "7" and majority.aggregation == "majority"
    engine = ConfidentEngine(["4", "4", "7", "7", "7"], logps=[-0.01, -0.01, -3.0, -3.0, -3.0])
    weighted = await _run(engine, aggregation="confidence")
    assert weighted.final_answer == "4" and weighted.aggregation == "confidence"
    assert weighted.weights["4"] > weighted.weights["7"] and weighted.votes == {"4": 2, "7": 3}


async def test_confidence_falls_back_to_majority_without_logprobs():
    r = await _run(ConfidentEngine(["4", "4", "7", "7", "7"]), aggregation="confidence")
    assert r.final_answer == "7" and r.aggregation == "majority" and r.weights is None


async def test_parallel_samples_use_the_same_rule():
    turn = [("4", -0.01), ("7", -3.0), ("7", -3.0)]
    engine = ConfidentEngine(None, per_sample=[turn])
    r = await refine(engine, "q", CHECK, cfg(max_turns=1, samples_per_turn=3, aggregation="confidence"))
    assert r.final_answer == "4" and r.turns[0].chosen == 0
    engine = ConfidentEngine(None, per_sample=[turn])
    r = await refine(engine, "q", CHECK, cfg(max_turns=1, samples_per_turn=3))
    assert r.final_answer == "7" and r.turns[0].chosen == 1


async def test_engine_completions_carry_logprobs_only_when_asked():
    engine = ConfidentEngine(["4"], logps=[-0.5])
    [[c]] = await engine.generate([[{"role": "user", "content": "q"}]], SamplingParams())
    assert isinstance(c, Completion) and c.token_logprobs is None
