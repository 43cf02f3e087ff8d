"""`rise bench`: the closed-loop load on its own, and a tiny end-to-end run of every contender
(naive loop, raw engine, rise-serve over HTTP) on the shipped model."""

import asyncio
import json

from app.bench import cli
from app.bench.load import Outcome, closed_loop, summarize


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


def test_tiny_bench_end_to_end(tmp_path, model_path, capsys):
    out = tmp_path / "bench"
    rc = cli.main(["--model", str(model_path), "--clients", "3", "--requests", "3", "--naive-requests", "2",
                   "--one-client-requests", "1", "--turns", "2", "--max-tokens", "120",
                   "--contenders", "naive", "raw", "rise-serve", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "bench.json").read_text())
    c = report["contenders"]
    assert set(c) == {"naive", "raw", "rise-serve"}
    assert c["naive"]["requests"] == 2 and c["raw"]["requests"] == c["rise-serve"]["requests"] == 3
    for r in c.values():
        assert r["answers_per_s"] > 0 and r["tokens_per_s"] > 0 and len(r["ttft_by_turn_s"]) == 2
    served = c["rise-serve"]
    assert served["one_client"]["requests"] == 1 and served["rss_peak_mb"] >= served["rss_end_mb"] > 0
    assert served["rss_timeline_mb"] and all(mb > 0 for _, mb in served["rss_timeline_mb"])
    assert report["vs_naive"] == round(c["rise-serve"]["answers_per_s"] / c["naive"]["answers_per_s"], 2)
    assert report["vs_raw"] == round(c["rise-serve"]["answers_per_s"] / c["raw"]["answers_per_s"], 2)
    assert report["ttft_turn5_over_turn1"] > 0 and report["machine"]["cores"] >= 1
    assert report["same_final_answer_as_naive"] == 1.0  # greedy: the same work, the same answers
    assert "rise-serve / naive" in capsys.readouterr().out


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
