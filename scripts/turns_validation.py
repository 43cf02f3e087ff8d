"""Each turn's own accuracy without an oracle, m1@tk, m5@t1 and the turn-to-turn flow on the
validation split: the quick check used while trying RISE recipes for issue 14 (never the test split).

m1 and m5 are `rise eval`'s (`app/evaluation/metrics.py`): majority vote, a tie to the first of the
tied answers (`app/refine/vote.py`, tie rule `first`), as the docs define m1.

    python scripts/turns_validation.py runs/r14/p2 --limit 300      # ~1 min on 2 quiet cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.answers.checker import get_checker  # noqa: E402
from app.engines.base import SamplingParams  # noqa: E402
from app.engines.hf import HFEngine  # noqa: E402
from app.evaluation import metrics  # noqa: E402
from app.refine.loop import refine  # noqa: E402
from app.refine.types import RefineConfig  # noqa: E402
from app.tasks import synthetic  # noqa: E402

TIE_RULE = "first"


def summarize(answers: Sequence[Sequence[str | None]], samples: Sequence[Sequence[str | None]],
              references: Sequence[str], equivalent: Callable[[str, str], bool], turns: int) -> dict:
    """Percentages per turn (own accuracy, m1@tk), m5@t1 and the flow between turns, by the
    evaluation's metrics and tie rule."""
    n = len(references)
    pct = lambda v: round(100 * sum(v) / n, 1)  # noqa: E731
    m1 = metrics.m1_vectors(answers, references, equivalent, turns, TIE_RULE)
    flow = metrics.flow_vectors(answers, references, equivalent, turns)
    m5 = metrics.m_at_t1_vector(samples, references, equivalent, 5)["m5@t1"]
    return {"tie_rule": TIE_RULE, "turn_accuracy": [pct(flow[f"turn_accuracy/t{k}"]) for k in range(1, turns + 1)],
            "m1@tk": [pct(m1[f"m1@t{k}"]) for k in range(1, turns + 1)], "m5@t1": pct(m5),
            "flow": {f"t{k - 1}>t{k}": {"right_to_wrong": pct(flow[f"t{k - 1}->t{k}/right_to_wrong"]),
                                         "wrong_to_right": pct(flow[f"t{k - 1}->t{k}/wrong_to_right"])}
                     for k in range(2, turns + 1)}}


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
    answers = [[checker.extract(t.text) for t in run.turns] + [None] * (a.turns - len(run.turns)) for run in runs]
    sampled = [[checker.extract(x.text) for x in group] for group in parallel]
    return {"model": a.model, "split": "validation", "problems": a.limit, "seed": a.seed,
            **summarize(answers, sampled, [p.answer for p in problems], checker.equivalent, a.turns)}


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
