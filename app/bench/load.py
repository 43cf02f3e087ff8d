"""A closed-loop load: C clients, each sending its next request as soon as the last one is answered,
over a fixed list of problems, and the figures `rise bench` reports for it.

    python -m app.bench.cli --quick
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import numpy as np


@dataclass
class Outcome:
    """One refined answer, as its client saw it."""

    latency_s: float
    completion_tokens: int
    prompt_tokens: int
    ttft_by_turn_s: list[float | None]
    answer: str | None


Send = Callable[[int], Awaitable[Outcome]]  # problem index -> outcome


async def closed_loop(send: Send, requests: int, clients: int, duration_s: float | None = None) -> tuple[list[Outcome], float]:
    """Run `requests` requests (or, with `duration_s`, as many as fit in that time) with `clients`
    concurrent clients; returns the outcomes in problem order and the wall time."""
    outcomes: dict[int, Outcome] = {}
    counter = iter(range(10**9))
    start = time.perf_counter()

    def more(i: int) -> bool:
        if duration_s is not None:
            return time.perf_counter() - start < duration_s
        return i < requests

    async def client() -> None:
        while more(i := next(counter)):
            outcomes[i] = await send(i)

    await asyncio.gather(*[client() for _ in range(clients)])
    return [outcomes[i] for i in sorted(outcomes)], time.perf_counter() - start


def summarize(outcomes: list[Outcome], wall_s: float, clients: int) -> dict:
    """answers/s, tokens/s, latency percentiles and the median time to first token of each turn."""
    latencies = np.array([o.latency_s for o in outcomes])
    turns = max(len(o.ttft_by_turn_s) for o in outcomes)
    ttft = []
    for k in range(turns):
        values = [o.ttft_by_turn_s[k] for o in outcomes if k < len(o.ttft_by_turn_s) and o.ttft_by_turn_s[k] is not None]
        ttft.append(round(float(np.median(values)), 4) if values else None)
    completion = sum(o.completion_tokens for o in outcomes)
    return {
        "clients": clients,
        "requests": len(outcomes),
        "wall_s": round(wall_s, 2),
        "answers_per_s": round(len(outcomes) / wall_s, 3),
        "tokens_per_s": round(completion / wall_s, 1),
        "prompt_tokens_per_s": round(sum(o.prompt_tokens for o in outcomes) / wall_s, 1),
        "completion_tokens": completion,
        "tokens_per_answer": round(completion / max(len(outcomes), 1), 1),
        "turns_per_answer": round(sum(len(o.ttft_by_turn_s) for o in outcomes) / max(len(outcomes), 1), 2),
        "p50_s": round(float(np.percentile(latencies, 50)), 3),
        "p99_s": round(float(np.percentile(latencies, 99)), 3),
        "ttft_by_turn_s": ttft,
    }
