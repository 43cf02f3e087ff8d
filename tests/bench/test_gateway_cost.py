"""The gateway-cost simulation (app/bench/gateway_cost.py), run tiny: a real `rise serve --engine
openai` in front of the simulated upstream (app/bench/sim_upstream.py), whose answers the official
openai client reads as a chat completion, streamed and not.

    pytest tests/bench/test_gateway_cost.py
"""

import json
import sys

import openai
import pytest

from app.api import launch
from app.bench import gateway_cost


@pytest.fixture
def upstream():
    proc, url, log = launch.spawn(log_name="sim-upstream-test", command=[sys.executable, "-m", "app.bench.sim_upstream"],
                                  args=["--tokens-per-s", "2000", "--tokens-per-turn", "20"])
    try:
        launch.wait_until_answers(proc, url, log, "/v1/models", timeout=60)
        yield url
    finally:
        launch.stop(proc, 10)


def test_the_simulated_upstream_answers_at_its_length_streamed_and_not(upstream):
    client = openai.OpenAI(base_url=f"{upstream}/v1", api_key="none")
    messages = [{"role": "user", "content": "Ana has 68 marbles."}]
    whole = client.chat.completions.create(model="sim", messages=messages)
    assert whole.usage.completion_tokens == 20 and whole.choices[0].finish_reason == "stop"
    assert whole.choices[0].message.content.endswith("The answer is 1859.")
    chunks = list(client.chat.completions.create(model="sim", messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) == 20 and "".join(pieces) == whole.choices[0].message.content  # a token per chunk
    assert chunks[-1].usage.completion_tokens == 20
    short = client.chat.completions.create(model="sim", messages=messages, max_tokens=5)
    assert short.usage.completion_tokens == 5 and short.choices[0].finish_reason == "length"


def test_a_tiny_run_reports_sane_figures(tmp_path):
    assert gateway_cost.main(["--refinements", "3", "--clients", "2", "--warmup", "1", "--tokens-per-s", "2000",
                              "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gateway-cost.json").read_text())
    assert report["turns"] == 5 and report["date"] and report["command"].startswith("python -m app.bench.gateway_cost")
    assert [m["mode"] for m in report["modes"]] == ["json", "stream"]
    for m in report["modes"]:
        assert m["refinements_sent"] == m["refinements_answered"] == m["refinements_counted"] == 3
        assert m["upstream_calls"] == 15 and m["turns_per_refinement"] == 5  # no oracle: all 5 turns run
        assert m["completion_tokens_per_refinement"] == 5 * 54
        assert m["server_cpu_s"] > 0 and m["cpu_ms_per_refinement"] > 0 and m["refinements_per_s_per_core"] > 0
        assert m["p50_s"] >= m["upstream_only_latency_s"] > 0  # rise-serve cannot beat its upstream
