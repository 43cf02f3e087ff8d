"""What the loop's events tell a streaming client between turns: `turn_start` carries the
feedback the turn's prompt ended with (RISE's sentence, the request's template, or the oracle's
own), `turn_end` every sample's answer (what the playground's running tally counts).

    .venv/bin/python -m pytest -q tests/refine/test_loop_events.py
"""

from app.answers.checker import get_checker
from app.engines.base import SamplingParams
from app.refine.feedback import DEFAULT_FEEDBACK
from app.refine.loop import refine
from app.refine.oracles import Verdict
from app.refine.types import RefineConfig
from tests.fakes import FakeEngine, scripted

Q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"
CHECK = get_checker("synthetic")


def starts(events: list[dict]) -> list[tuple[int, str | None]]:
    return [(e["turn"], e["feedback"]) for e in events if e["type"] == "turn_start"]


async def test_turn_start_carries_rise_sentence_or_the_request_template():
    events: list[dict] = []
    r = await refine(FakeEngine(scripted(["1", "2", "3"])), Q, CHECK, RefineConfig(max_turns=3), on_event=events.append)
    rise = DEFAULT_FEEDBACK.format(question=Q)
    assert starts(events) == [(1, None), (2, rise), (3, rise)]
    assert [t.feedback for t in r.turns] == [rise, rise, None]  # the same text as the result's turns

    events.clear()
    template = "Check each step again. {question}"
    await refine(FakeEngine(scripted(["1", "2"])), Q, CHECK, RefineConfig(max_turns=2, feedback=template),
                 on_event=events.append)
    assert starts(events) == [(1, None), (2, "Check each step again. " + Q)]


class Grader:
    async def judge(self, question, answer, text, turn):
        return Verdict(False, f"turn {turn}: {answer} is wrong")


async def test_turn_start_carries_the_oracles_own_feedback():
    events: list[dict] = []
    await refine(FakeEngine(scripted(["5", "6", "7"])), Q, CHECK, RefineConfig(max_turns=3), oracle=Grader(),
                 on_event=events.append)
    assert starts(events) == [(1, None), (2, "turn 1: 5 is wrong"), (3, "turn 2: 6 is wrong")]


async def test_turn_end_names_every_samples_answer():
    events: list[dict] = []
    config = RefineConfig(max_turns=2, samples_per_turn=3, sampling=SamplingParams(temperature=1, seed=1))
    r = await refine(FakeEngine(scripted(["4", "4", "5", "6", "6", "6"])), Q, CHECK, config, on_event=events.append)
    ends = [e["answers"] for e in events if e["type"] == "turn_end"]
    assert ends == [[s.answer for s in t.samples] for t in r.turns]
    assert sum(len(a) for a in ends) == 6
