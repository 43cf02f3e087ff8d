"""The one rule for a request's temperature, followed by every surface (`/v1/refine`, chat
completions, the Responses API, `rise refine`, the playground):

- given: used as given, except that 0 (greedy, as is anything below 1e-5) with several draws of one prompt (samples_per_turn
  above 1, or chat's `n` above 1) is refused: every draw would be the same, paid for once each;
- left out: 0 (greedy: the same answer on every run) when each prompt is drawn once, and the
  sampled temperature (RISE_SAMPLED_TEMPERATURE, 0.7) when it is drawn several times, so that the
  samples can differ. Turns never need it: each turn's prompt differs (it holds the last attempt
  and the feedback), so greedy turns still change their answer.

    .venv/bin/pytest -q tests/refine/test_temperature.py
"""

from __future__ import annotations

from app.engines.base import GREEDY_BELOW  # below it every engine decodes greedily

GREEDY = 0.0
SAMPLED = 0.7  # RISE_SAMPLED_TEMPERATURE's default: what `rise eval` and the published results use


def resolve_temperature(given: float | None, samples: int = 1, choices: int = 1, sampled: float = SAMPLED, *,
                        samples_name: str = "samples_per_turn", choices_name: str = "n") -> float:
    """The temperature a request runs at (rule above). A ValueError, whose message starts with
    `temperature`, for an explicit 0 with several draws; `samples_name` and `choices_name` are the
    request's names for them (`rise.samples_per_turn` in chat, `--samples` in the CLI)."""
    if given is None:
        return sampled if samples > 1 or choices > 1 else GREEDY
    if given < GREEDY_BELOW and (samples > 1 or choices > 1):  # 1e-6 is as greedy as 0
        what = (f"the {samples} samples of each turn ({samples_name})" if samples > 1
                else f"the {choices} choices ({choices_name})")
        raise ValueError(f"temperature {given:g} (greedy: anything below {GREEDY_BELOW:g}) makes {what} identical, each paid for: leave temperature out "
                         f"(several draws are then sampled at {sampled:g}) or set it above 0")
    return given
