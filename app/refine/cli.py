"""`rise refine`: the loop on one question, turns printed as they happen.

    rise refine "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?"
    rise refine "..." --reference 17 --turns 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.cli_args import positive_int, seed, temperature
from app.config import Settings, model_problem
from app.engines.factory import ENGINES


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise refine", description="Answer, get feedback, answer again.")
    ap.add_argument("question")
    ap.add_argument("--reference", help="the reference answer (oracle mode: stop at the first correct turn)")
    ap.add_argument("--turns", type=positive_int, default=settings.default_turns, help="max turns K")
    ap.add_argument("--samples", type=positive_int, default=1, help="samples per turn")
    ap.add_argument("--window", choices=["last", "full"], default="last")
    ap.add_argument("--aggregation", choices=["majority", "last"], default="majority")
    ap.add_argument("--tie-break", choices=["first", "last"], default="last",
                    help="which answer wins a tied vote (default last: the later turn, as the server)")
    ap.add_argument("--temperature", type=temperature, default=0.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--max-tokens", type=positive_int, default=settings.default_max_tokens)
    ap.add_argument("--seed", type=seed, default=None)
    ap.add_argument("--model", default=str(settings.model))
    ap.add_argument("--engine", choices=ENGINES, default=settings.engine)
    ap.add_argument("--base-url", default=settings.base_url)
    ap.add_argument("--task", choices=["synthetic", "gsm8k", "math"], default=settings.task, help="answer format")
    ap.add_argument("--json", action="store_true", help="print the whole result as JSON")
    return ap


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings()
    except Exception as e:  # noqa: BLE001 - pydantic's message names the bad RISE_* setting
        print(f"rise refine: error: {e}", file=sys.stderr)
        return 2
    ap = build_parser(settings)
    a = ap.parse_args(argv)
    if not a.question.strip():
        ap.error("the question is empty")
    if not 1 <= a.turns <= settings.max_turns_cap:
        ap.error(f"--turns must be between 1 and {settings.max_turns_cap} (RISE_MAX_TURNS_CAP)")
    if not 1 <= a.samples <= settings.max_samples_cap:
        ap.error(f"--samples must be between 1 and {settings.max_samples_cap} (RISE_MAX_SAMPLES_CAP)")
    if not 1 <= a.max_tokens <= settings.max_tokens_cap:
        ap.error(f"--max-tokens must be between 1 and {settings.max_tokens_cap} (RISE_MAX_TOKENS_CAP)")
    if a.engine != "openai" and (problem := model_problem(a.model)):
        ap.error(problem)
    from app.answers.checker import get_checker
    from app.engines.base import PromptTooLongError, SamplingParams
    from app.engines.base import EngineError
    from app.engines.factory import open_engine
    from app.engines.hf import ModelLoadError
    from app.refine.loop import reference_oracle, refine
    from app.refine.types import RefineConfig

    try:
        sampling = SamplingParams(temperature=a.temperature, top_p=a.top_p, max_tokens=a.max_tokens, seed=a.seed)
        config = RefineConfig(max_turns=a.turns, samples_per_turn=a.samples, window=a.window,
                              aggregation=a.aggregation, tie_break=a.tie_break, sampling=sampling)
    except ValueError as e:
        ap.error(str(e))
    checker = get_checker(a.task)
    oracle = reference_oracle(checker, a.reference) if a.reference else None

    def show(event: dict) -> None:
        if a.json:
            return
        if event["type"] == "turn_start":
            print(f"--- turn {event['turn']} ---", flush=True)
        elif event["type"] == "delta" and event["sample"] == 0:
            print(event["text"], end="", flush=True)
        elif event["type"] == "turn_end":
            verdict = {True: "correct", False: "incorrect", None: "unchecked"}[event["correct"]]
            print(f"\n[answer: {event['answer']} ({verdict})]", flush=True)

    async def go():
        engine = await open_engine(a.engine, a.model, base_url=a.base_url)
        try:
            return await refine(engine, a.question, checker, config, oracle=oracle, on_event=show)
        finally:
            await engine.aclose()

    try:
        result = asyncio.run(go())
    except (ModelLoadError, PromptTooLongError, ValueError, EngineError) as e:
        print(f"rise refine: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"=== final answer: {result.final_answer} (turn {result.final_turn}, stop: {result.stop_reason}, "
              f"votes: {result.votes})")
    return 0
