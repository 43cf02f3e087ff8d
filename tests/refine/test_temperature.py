"""The one temperature rule (app/refine/temperature.py), on its own.

    .venv/bin/pytest -q tests/refine/test_temperature.py
"""

import pytest

from app.refine.temperature import resolve_temperature


def test_left_out_is_greedy_for_one_draw_and_sampled_for_several():
    assert resolve_temperature(None) == 0.0
    assert resolve_temperature(None, samples=3) == 0.7
    assert resolve_temperature(None, choices=2) == 0.7
    assert resolve_temperature(None, samples=2, sampled=1.1) == 1.1


def test_given_is_kept():
    assert resolve_temperature(0.0) == 0.0
    assert resolve_temperature(1.3, samples=4) == 1.3


@pytest.mark.parametrize("kwargs,named", [(dict(samples=4), "4 samples of each turn (samples_per_turn)"),
                                          (dict(choices=3), "3 choices (n)"),
                                          (dict(samples=2, samples_name="--samples"), "(--samples)")])
def test_greedy_with_several_draws_is_refused_saying_why(kwargs, named):
    with pytest.raises(ValueError) as e:
        resolve_temperature(0.0, **kwargs)
    message = str(e.value)
    assert message.startswith("temperature 0") and named in message and "identical" in message
    assert "leave temperature out" in message


@pytest.mark.parametrize("given", [1e-6, 1e-320, 5e-324])
def test_a_temperature_that_every_engine_runs_greedy_is_refused_like_0(given):
    """Below GREEDY_BELOW every engine decodes greedily (app/engines/base.py), so several draws
    would be just as identical as at an explicit 0: the rule must not let it through."""
    with pytest.raises(ValueError) as e:
        resolve_temperature(given, samples=2)
    assert str(e.value).startswith("temperature") and "identical" in str(e.value)
    assert resolve_temperature(given) == given  # one draw: kept (the engine runs it greedily)
