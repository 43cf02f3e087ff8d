"""Each turn's own accuracy without an oracle, m1@tk, m5@t1 and the turn-to-turn flow on the
validation split: the quick check used while trying RISE recipes for issue 14 (never the test split).

    python scripts/turns_validation.py runs/r14/p2 --limit 300      # ~1 min on 2 quiet cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter

from app.answers.checker import get_checker
from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.refine.loop import refine
from app.refine.types import RefineConfig
from app.tasks import synthetic


def vote(answers: list[str | None]) -> str | None:
    """Majority over the answers given; a tie goes to the latest of the tied answers."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in reversed(answers) if a is not None and counts[a] == best)


async def main(a: argparse.Namespace) -> dict:
    engine, checker = HFEngine(a.model, max_batch_size=64), get_checker("synthetic")
    problems = synthetic.problems(a.problem_seed, a.limit, synthetic.LEVELS[a.level], "validation")
    sampling = lambda i: SamplingParams(temperature=a.temperature, max_tokens=200, seed=a.seed * 1_000_003 + i)  # noqa: E731
    try:
        runs = await asyncio.gather(*[refine(engine, p.question, checker, RefineConfig(max_turns=a.turns, window="last",
                                                                                      sampling=sampling(i)))
                                      for i, p in enumerate(problems)])
        parallel = await engine.generate([[{"role": "user", "content": p.question}] for p in problems],
                                         SamplingParams(temperature=a.temperature, max_tokens=200, n=5, seed=a.seed + 77))
    finally:
        await engine.aclose()
    right = lambda ans, p: ans is not None and checker.equivalent(ans, p.answer)  # noqa: E731
    turn, m1, rw, wr, m5 = [0] * a.turns, [0] * a.turns, [0] * a.turns, [0] * a.turns, 0
    for p, run, samples in zip(problems, runs, parallel):
        answers = [checker.extract(t.text) for t in run.turns]
        ok = [right(x, p) for x in answers]
        for k in range(a.turns):
            turn[k] += ok[k]
            m1[k] += right(vote(answers[:k + 1]), p)
            if k:
                rw[k] += ok[k - 1] and not ok[k]
                wr[k] += ok[k] and not ok[k - 1]
        m5 += right(vote([checker.extract(s.text) for s in samples][::-1]), p)
    pct = lambda x: round(100 * x / a.limit, 1)  # noqa: E731
    return {"model": a.model, "split": "validation", "problems": a.limit, "seed": a.seed,
            "turn_accuracy": [pct(x) for x in turn], "m1@tk": [pct(x) for x in m1], "m5@t1": pct(m5),
            "flow": {f"t{k}>t{k + 1}": {"right_to_wrong": pct(rw[k]), "wrong_to_right": pct(wr[k])} for k in range(1, a.turns)}}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--level", default="expert")
    ap.add_argument("--problem-seed", type=int, default=4321)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=0.7)
    print(json.dumps(asyncio.run(main(ap.parse_args()))))
