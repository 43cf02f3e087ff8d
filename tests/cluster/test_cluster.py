"""rise-serve past one machine, on the multi-process test bed (tests/cluster/bed.py): traces across
replicas, turn affinity with and without the session header, an upstream SIGKILLed mid-turn, and a
rolling restart of every replica and upstream under closed-loop load. Heavy (six processes, minutes
of load): marked `cluster`, left out of `make test`; `make cluster-test` runs it and writes the
figures to runs/cluster.json (docs/results/cluster.md).

    RISE_CLUSTER_SECONDS=180 .venv/bin/python -m pytest -q -s -m cluster tests/cluster
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.cluster.bed import Bed, Proc, wait
from tests.servers import ROOT, free_port

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]
SECONDS = float(os.environ.get("RISE_CLUSTER_SECONDS", "180"))
CLIENTS = 4
OUT = ROOT / "runs" / "cluster.json"
FIGURES: dict = {"date": time.strftime("%Y-%m-%d")}


def question(i: int) -> str:
    a, b, c = 10 + i % 80, 2 + i % 9, 1 + (i * 7) % 50
    return f"Ana has {a} marbles. She ends up with {b} times as many. Then she buys {c} more. How many marbles does Ana have now?"


@pytest.fixture(scope="module")
def bed():
    try:
        b = Bed()
        b.start()
    except RuntimeError as e:
        b.close()
        pytest.skip(f"THE CLUSTER TEST BED COULD NOT START, its tests did NOT run: {e}")
    yield b
    b.close()
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(FIGURES, indent=1))


def test_traces_answered_by_one_replica_are_read_labelled_and_deleted_through_the_other(bed):
    r1, r2 = bed.reps
    r = httpx.post(f"{r1.url}/v1/refine", json={"question": question(1), "max_turns": 2}, timeout=120)
    assert r.status_code == 200
    rid = r.json()["id"]
    assert wait(lambda: httpx.get(f"{r2.url}/v1/refinements/{rid}").status_code == 200, 30)
    assert httpx.post(f"{r2.url}/v1/refinements/{rid}/feedback", json={"rating": 1}).status_code == 200
    assert httpx.get(f"{r1.url}/v1/refinements/{rid}").json()["feedback"]["rating"] == 1
    assert httpx.delete(f"{r2.url}/v1/refinements/{rid}").status_code == 200
    assert httpx.get(f"{r1.url}/v1/refinements/{rid}").status_code == 404


def _affinity_run(bed: Bed, front: Proc, n: int = 8) -> dict:
    """n five-turn refinements (two at a time) through `front`: the upstreams' prefix-cache hit rate
    and the median turn-5 / turn-1 time to first token."""
    def totals():
        return [sum(u.metric(m) for u in bed.ups) for m in
                ("rise_engine_prompt_tokens_total", "rise_engine_prefix_cache_hit_tokens_total")]

    before = totals()
    ratios = []

    def one(i):
        r = httpx.post(f"{front.url}/v1/refine", json={"question": question(1000 + i + random.randrange(10**6)),
                                                       "max_turns": 5, "max_tokens": 96}, timeout=300)
        assert r.status_code == 200, r.text
        turns = r.json()["turns"]
        ratios.append(turns[4]["ttft_s"] / turns[0]["ttft_s"])

    for i in range(0, n, 2):
        threads = [threading.Thread(target=one, args=(i + j,)) for j in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    prompt, hit = (a - b for a, b in zip(totals(), before))
    return {"prefix_cache_hit_rate": round(hit / prompt, 3), "ttft_turn5_over_turn1": round(statistics.median(ratios), 2),
            "refinements": n}


def test_affinity_keeps_the_prefix_cache_that_round_robin_loses(bed):
    env = {**bed.reps[0].env, "RISE_TRACES_URL": ""}
    variants = {"single_engine": Proc("single", free_port(), {**env, "RISE_BASE_URL": f"{bed.ups[0].url}/v1"}),
                "with_header": bed.reps[0],
                "without_header": Proc("nohdr", free_port(), {**env, "RISE_UPSTREAM_SESSION_HEADER": ""})}
    try:
        for name, p in variants.items():
            if p.proc is None:
                p.start()
            FIGURES.setdefault("affinity", {})[name] = _affinity_run(bed, p)
    finally:
        for p in (variants["single_engine"], variants["without_header"]):
            p.stop()
    got = FIGURES["affinity"]
    assert got["with_header"]["prefix_cache_hit_rate"] > got["without_header"]["prefix_cache_hit_rate"]
    assert got["with_header"]["prefix_cache_hit_rate"] >= 0.8 * got["single_engine"]["prefix_cache_hit_rate"]


def test_an_upstream_killed_mid_turn_costs_one_retried_turn_per_refinement(bed):
    u1 = bed.ups[0]
    k = 4
    bed.fleet.command("disable server fleet_servers/u2")  # every turn goes to u1
    before = sum(r.metric("rise_turn_retries_total") for r in bed.reps)
    body = {"max_turns": 1, "max_tokens": 512, "temperature": 2.0, "timeout": 280}
    results: list = []

    def one(i):
        results.append(httpx.post(f"{bed.front.url}/v1/refine", json={**body, "question": question(i), "seed": i},
                                  timeout=300))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
    [t.start() for t in threads]
    try:
        assert wait(lambda: u1.metric("rise_requests_in_flight", route="/v1/chat/completions") >= k, 60), "the turns never all ran on u1"
    finally:
        bed.fleet.command("enable server fleet_servers/u2")
    u1.stop(signal.SIGKILL)
    [t.join() for t in threads]
    retries = sum(r.metric("rise_turn_retries_total") for r in bed.reps) - before
    FIGURES["sigkill"] = {"refinements_in_flight": k, "answered_200": sum(r.status_code == 200 for r in results),
                          "turn_retries": retries}
    u1.start()
    assert wait(lambda: bed.fleet.states().get("u1") == "UP", 60)
    assert [r.status_code for r in results] == [200] * k, [r.text[:200] for r in results]
    assert all(len(r.json()["turns"]) == 1 for r in results)
    assert retries == k


async def _client(c: httpx.AsyncClient, i0: int, until: float, stats: dict, acked: list) -> None:
    i = i0
    while time.monotonic() < until:
        i += CLIENTS
        body = {"question": question(i), "max_turns": 3, "max_tokens": 64, "temperature": 0.7, "seed": i}
        while True:
            stats["requests"] += 1
            try:
                r = await c.post("/v1/refine", json=body)
            except httpx.HTTPError as e:
                stats["transport_errors"] += 1
                stats.setdefault("errors", []).append(repr(e)[:200])
                break
            if r.status_code in (429, 503) and "Retry-After" in r.headers:
                stats["retried_" + str(r.status_code)] += 1
                await asyncio.sleep(min(float(r.headers["Retry-After"]), 2.0))
                continue
            if r.status_code == 200:
                stats["ok"] += 1
                acked.append(r.json()["id"])
            else:
                stats["other_status"] += 1
                stats.setdefault("errors", []).append(f"{r.status_code} {r.text[:200]}")
            break


def test_rolling_restart_under_load_loses_nothing(bed):
    stats = {"requests": 0, "ok": 0, "retried_429": 0, "retried_503": 0, "other_status": 0, "transport_errors": 0}
    acked: list[str] = []
    restarts: list[dict] = []

    def roll():
        time.sleep(min(10, SECONDS / 10))
        for p, lb in [(r, bed.front) for r in bed.reps] + [(u, bed.fleet) for u in bed.ups]:
            t = time.monotonic()
            code = bed.restart(p, lb)
            restarts.append({"process": p.name, "exit_status": code, "seconds": round(time.monotonic() - t, 1)})

    async def load():
        until = time.monotonic() + SECONDS
        async with httpx.AsyncClient(base_url=bed.front.url, timeout=300) as c:
            await asyncio.gather(*[_client(c, i, until, stats, acked) for i in range(CLIENTS)])

    roller = threading.Thread(target=roll)
    roller.start()
    asyncio.run(load())
    roller.join()
    assert wait(lambda: set(acked) <= bed.trace_ids(), 60)
    stored = bed.trace_ids()
    FIGURES["rolling_restart"] = {"seconds": SECONDS, "clients": CLIENTS, **{k: v for k, v in stats.items() if k != "errors"},
                                  "acknowledged": len(acked), "acknowledged_in_postgres": len(set(acked) & stored),
                                  "missing": len(set(acked) - stored), "restarts": restarts,
                                  "errors": stats.get("errors", [])[:5]}
    assert len(restarts) == 4 and all(r["exit_status"] == 0 for r in restarts)
    assert stats["other_status"] == 0 and stats["transport_errors"] == 0, stats.get("errors")
    assert stats["ok"] == len(acked) > 0 and set(acked) <= stored
