"""Load at about twice what the server admits: every request gets a success or a 429/503 with
Retry-After, nothing else, nothing left hanging; RSS growth reported. Short in CI
(RISE_SOAK_SECONDS, default 15); `make soak` runs it for 10 minutes. Traffic goes to 127.0.0.1 only,
bounded in count and time."""

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, start_server, stop_server

SECONDS = float(os.environ.get("RISE_SOAK_SECONDS", "15"))
CLIENTS = 16  # the server admits 4 running + 4 queued
MAX_REQUESTS = 20_000


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.fixture(scope="module")
def small_server():
    # a small prefix cache fills during the warm-up, so what grows afterwards is not the cache by design
    proc, url, _ = start_server({"RISE_MAX_IN_FLIGHT": "4", "RISE_MAX_QUEUE": "4", "RISE_PREFIX_CACHE_MB": "8"})
    yield proc, url
    stop_server(proc)


@pytest.mark.timeout(SECONDS + 300)  # pyproject's 600 s would end `make soak` (600 s of load) by construction
def test_overload_gets_only_successes_or_retry_after(small_server):
    from app.tasks import synthetic

    proc, url = small_server
    probs = synthetic.problems(77, 200, synthetic.LEVELS["medium"])
    outcomes: Counter = Counter()
    bad: list[str] = []
    sent = 0

    async def client(k: int, stop_at: float):
        nonlocal sent
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            i = k
            while time.monotonic() < stop_at and sent < MAX_REQUESTS:
                sent += 1
                p = probs[i % len(probs)]
                i += CLIENTS
                try:
                    r = await c.post("/v1/refine", json={"question": p.question, "max_turns": 2, "reference": p.answer})
                except httpx.HTTPError as e:
                    bad.append(f"transport: {type(e).__name__}")
                    continue
                outcomes[r.status_code] += 1
                if r.status_code in (429, 503):
                    if not r.headers.get("retry-after"):
                        bad.append(f"{r.status_code} without Retry-After")
                    await asyncio.sleep(min(float(r.headers.get("retry-after") or 1), 2.0))  # a polite client
                elif r.status_code != 200:
                    bad.append(f"{r.status_code}: {r.text[:200]}")

    async def run(seconds: float):
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*[client(k, stop_at) for k in range(CLIENTS)])

    asyncio.run(run(3))  # warm-up, then measure memory from here
    rss_start = rss_kb(proc.pid)
    outcomes.clear()
    start = time.monotonic()
    asyncio.run(run(SECONDS))
    elapsed = time.monotonic() - start
    rss_end = rss_kb(proc.pid)
    growth = (rss_end - rss_start) / rss_start
    metrics = httpx.get(f"{url}/metrics").text
    hanging = [line for line in metrics.splitlines() if line.startswith("rise_requests_in_flight{") and not line.endswith(" 0.0")]
    report = {"seconds": round(elapsed, 1), "clients": CLIENTS, "requests": sum(outcomes.values()),
              "successes": outcomes[200], "shed_429": outcomes[429], "shed_503": outcomes[503], "errors": len(bad),
              "rss_start_mb": round(rss_start / 1024, 1), "rss_end_mb": round(rss_end / 1024, 1),
              "rss_growth_pct": round(100 * growth, 2), "in_flight_at_end": hanging}
    out = ROOT / "runs" / "soak.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n[soak] {report}")
    assert not bad, bad[:5]
    assert outcomes[200] > 0 and outcomes[429] > 0  # it really was overloaded
    assert not hanging, hanging
    assert growth < (0.10 if SECONDS >= 300 else 0.25)
