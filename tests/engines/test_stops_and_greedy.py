"""Stop strings cut at the earliest match, streams never run past the cut, and a tiny temperature
is greedy (issue 13, items 9 and 10): the helpers, then the embedded engine on the shipped model."""

from types import SimpleNamespace

import pytest
import torch

from app.engines.base import SamplingParams
from app.engines.sampling import row_generator, sample_next
from app.engines.stops import cut_at_stop, first_stop, hold_back
from app.engines.vllm_engine import stopped_text
from app.tasks import synthetic

# greedy: "5*2=10. 10-10=0. 0+2=2. 2-1=1. The answer is 1." (the stop strings below are cut from it)
QUESTION = ("Ana has 5 apples. She ends up with 2 times as many. Then she loses 10. Then she finds 2 more. "
            "Then she gives away 1. How many apples does Ana have now?")
TINY = [1e-45, 1e-38, 1e-30, 5e-6]


def test_the_earliest_stop_string_wins_whatever_the_list_order():
    for stops in [("swer", " an"), (" an", "swer")]:
        assert cut_at_stop("The answer", stops) == ("The", True)
        assert first_stop("The answer", stops) == 3
    assert cut_at_stop("The answer", ("xyz",)) == ("The answer", False)
    assert hold_back(("ab", "abcd")) == 3 and hold_back(()) == 0


def test_vllm_text_is_cut_again_at_the_earliest_stop_string():
    # vLLM matched "swer" (first in its list) and cut "The answer" to "The an"
    assert stopped_text(SimpleNamespace(text="The an", stop_reason="swer"), ("swer", " an")) == "The"
    assert stopped_text(SimpleNamespace(text="The an", stop_reason=None), ("swer", " an")) == "The"
    assert stopped_text(SimpleNamespace(text="The ", stop_reason=" an"), (" an", "swer")) == "The "
    assert stopped_text(SimpleNamespace(text="The an", stop_reason=7), ()) == "The an"


@pytest.mark.parametrize("t", TINY)
def test_a_tiny_temperature_is_greedy(t):
    assert SamplingParams(temperature=t).temperature == 0.0
    assert SamplingParams(temperature=1e-5).temperature == 1e-5
    logits = torch.randn(3, 50) * 20
    raw = SimpleNamespace(temperature=t, top_p=1.0)  # the sampler's own guard, without SamplingParams
    picked = sample_next(logits, [raw] * 3, [row_generator(b) for b in range(3)])
    assert picked.tolist() == logits.argmax(-1).tolist()


def conv(q):
    return [{"role": "user", "content": q}]


async def test_engine_tiny_temperatures_give_the_greedy_text(engine):
    [[greedy]] = await engine.generate([conv(QUESTION)], SamplingParams(max_tokens=60))
    assert "The answer is" in greedy.text
    for t in TINY + [1e-5]:
        [[c]] = await engine.generate([conv(QUESTION)], SamplingParams(max_tokens=60, temperature=t, seed=1))
        assert c.text == greedy.text, t


@pytest.mark.parametrize("stops", [("swer", " an"), (" an", "swer"), ("is 1", "zzzzzz"), ("2=", "1.")])
async def test_engine_cuts_at_the_earliest_stop_string_and_streams_no_further(engine, stops):
    [[full]] = await engine.generate([conv(QUESTION)], SamplingParams(max_tokens=60))
    expected = full.text[:min(at for s in stops if (at := full.text.find(s)) >= 0)]
    deltas: list[str] = []
    [[c]] = await engine.generate([conv(QUESTION)], SamplingParams(max_tokens=60, stop=stops),
                                  lambda _i, _j, text: deltas.append(text))
    assert c.text == expected and c.finish_reason == "stop"
    assert not any(s in c.text for s in stops)
    assert "".join(deltas) == c.text  # nothing streamed past the cut
