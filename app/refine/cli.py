"""`rise refine`: the loop on one question, turns printed as they happen; the options of
`POST /v1/refine`, and `--json` prints the same object as it answers.

    rise refine "Mia has 12 pens. She buys 5 more. How many pens does Mia have now?"
    rise refine "..." --reference 17 --turns 5 --json
    rise refine "..." --turns 5 --early-stop agree --aggregation confidence --max-total-tokens 400
    rise refine "..." --verifier numeric target=17 --feedback "Check each step. {question}"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.cli_args import DefaultsHelpFormatter, positive_int, seed, temperature
from app.config import Settings, model_problem
from app.engines.factory import ENGINES

# RefineConfig's fields (its errors start with one) -> the option that sets it
OPTIONS = {"max_turns": "--turns", "samples_per_turn": "--samples", "max_total_tokens": "--max-total-tokens",
           "agree_turns": "--agree-turns", "early_stop": "--early-stop", "feedback": "--feedback",
           "temperature": "--temperature", "top_p": "--top-p", "max_tokens": "--max-tokens", "aggregation": "--aggregation"}


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rise refine", description="Answer, get feedback, answer again.",
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("question")
    oracle = ap.add_argument_group("oracle (stop at the first correct turn)")
    oracle.add_argument("--reference", help="the reference answer")
    oracle.add_argument("--verifier", nargs="+", metavar="NAME [KEY=VALUE ...] | JSON",
                        help="a verifier checks each turn instead of a reference: a built-in (numeric target=31 "
                             "tolerance=0.5; regex pattern=...; json_schema schema={...}; contains value=...) or an "
                             "endpoint of RISE_VERIFIERS; values are read as JSON where they parse, else as text; or "
                             "one JSON object as the API's `verifier`")
    loop = ap.add_argument_group("the loop")
    loop.add_argument("--turns", type=positive_int, default=settings.default_turns, help="max turns K")
    loop.add_argument("--samples", type=positive_int, default=1, help="samples per turn")
    loop.add_argument("--window", choices=["last", "full"], default="last",
                      help="last: question + last attempt + feedback (RISE's); full: every attempt")
    loop.add_argument("--aggregation", choices=["majority", "last", "confidence"], default="majority",
                      help="the final answer: majority vote, the last turn's, or votes weighed by confidence")
    loop.add_argument("--tie-break", choices=["first", "last"], default="last",
                      help="which answer wins a tied vote (the server's default too)")
    loop.add_argument("--early-stop", choices=["none", "agree", "settled", "confident"], default="none",
                      help="without an oracle, stop early: agree (the last --agree-turns turns agree), settled (the "
                           "turns left cannot change the vote), confident (a turn's confidence reaches "
                           "RISE_CONFIDENCE_THRESHOLD)")
    loop.add_argument("--agree-turns", type=positive_int, default=2, help="for --early-stop agree")
    loop.add_argument("--max-total-tokens", type=positive_int, default=None,
                      help="completion tokens over all turns and samples (stop reason: budget); default: no budget")
    loop.add_argument("--feedback", default=None, metavar="TEMPLATE",
                      help="the feedback after a turn instead of RISE's sentence; must contain {question}")
    gen = ap.add_argument_group("generation")
    gen.add_argument("--temperature", type=temperature, default=None,
                     help=f"default: 0 (greedy) with one sample per turn, RISE_SAMPLED_TEMPERATURE "
                          f"({settings.sampled_temperature:g}) with more; 0 with --samples above 1 is refused")
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--max-tokens", type=positive_int, default=settings.default_max_tokens, help="per turn")
    gen.add_argument("--seed", type=seed, default=None)
    model = ap.add_argument_group("model")
    model.add_argument("--model", default=str(settings.model), help="an HF model directory (RISE_MODEL)")
    model.add_argument("--engine", choices=ENGINES, default=settings.engine)
    model.add_argument("--base-url", default=settings.base_url, help="the upstream of --engine openai")
    model.add_argument("--task", choices=["synthetic", "gsm8k", "math"], default=settings.task, help="answer format")
    ap.add_argument("--json", action="store_true", help="print the result as `POST /v1/refine` answers it")
    return ap


def verifier_spec(words: list[str]) -> tuple[str, dict]:
    """`--verifier`'s words as (name, params): `NAME KEY=VALUE ...` or one JSON object."""
    if len(words) == 1 and words[0].lstrip().startswith("{"):
        try:
            spec = json.loads(words[0])
        except json.JSONDecodeError as e:
            raise ValueError(f"not a JSON object: {e}") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValueError('a JSON verifier needs a "name" (e.g. {"name": "numeric", "target": 31})')
        return spec.pop("name"), spec
    name, params = words[0], {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise ValueError(f"{word!r} is not KEY=VALUE")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return name, params


def config_from(a: argparse.Namespace, settings: Settings):
    """The loop's configuration (temperature by the one rule, app/refine/temperature.py); a
    ValueError whose message starts with the option it is about."""
    from app.engines.base import SamplingParams
    from app.refine.feedback import DEFAULT_FEEDBACK
    from app.refine.temperature import resolve_temperature
    from app.refine.types import RefineConfig

    try:
        t = resolve_temperature(a.temperature, a.samples, sampled=settings.sampled_temperature, samples_name="--samples")
        sampling = SamplingParams(temperature=t, top_p=a.top_p, max_tokens=a.max_tokens, seed=a.seed)
        return RefineConfig(max_turns=a.turns, samples_per_turn=a.samples, window=a.window, aggregation=a.aggregation,
                            tie_break=a.tie_break, sampling=sampling, early_stop=a.early_stop,
                            agree_turns=a.agree_turns, max_total_tokens=a.max_total_tokens,
                            feedback=a.feedback or DEFAULT_FEEDBACK, confidence=settings.confidence_form,
                            confidence_threshold=settings.confidence_threshold)
    except ValueError as e:
        field, _, rest = str(e).partition(" ")
        option = OPTIONS.get(field)
        raise ValueError(f"argument {option}: {e}" if option else str(e)) from None


def check(ap: argparse.ArgumentParser, a: argparse.Namespace, settings: Settings) -> None:
    """What argparse alone cannot refuse: exit 2 with a message before any model loads."""
    if not a.question.strip():
        ap.error("the question is empty")
    if not 1 <= a.turns <= settings.max_turns_cap:
        ap.error(f"--turns must be between 1 and {settings.max_turns_cap} (RISE_MAX_TURNS_CAP)")
    if not 1 <= a.samples <= settings.max_samples_cap:
        ap.error(f"--samples must be between 1 and {settings.max_samples_cap} (RISE_MAX_SAMPLES_CAP)")
    if not 1 <= a.max_tokens <= settings.max_tokens_cap:
        ap.error(f"--max-tokens must be between 1 and {settings.max_tokens_cap} (RISE_MAX_TOKENS_CAP)")
    if a.reference and a.verifier:
        ap.error("give --reference or --verifier, not both")
    if a.early_stop != "none" and (a.reference or a.verifier):
        ap.error("--early-stop applies only without an oracle: with --reference or --verifier the loop stops at "
                 "the first correct turn")
    if a.feedback is not None and "{question}" not in a.feedback:
        ap.error("argument --feedback: must contain {question} (where the question is repeated to the model)")
    if a.engine != "openai" and (problem := model_problem(a.model)):
        ap.error(problem)


def make_oracle(ap: argparse.ArgumentParser, a: argparse.Namespace, settings: Settings, checker):
    """The reference's oracle, the verifier's (checked now: a bad one exits 2), or None."""
    from app.refine.loop import reference_oracle

    if a.reference:
        return reference_oracle(checker, a.reference)
    if not a.verifier:
        return None
    from app.verifiers.errors import VerifierError
    from app.verifiers.registry import Verifiers

    try:
        name, params = verifier_spec(a.verifier)
        return Verifiers(settings.verifiers).oracle(name, params)
    except VerifierError as e:
        ap.error(f"argument --verifier: {e.field}: {e.message}")
    except ValueError as e:
        ap.error(f"argument --verifier: {e}")


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings()
    except Exception as e:  # noqa: BLE001 - pydantic's message names the bad RISE_* setting
        print(f"rise refine: error: {e}", file=sys.stderr)
        return 2
    ap = build_parser(settings)
    a = ap.parse_args(argv)
    check(ap, a, settings)
    from app.answers.checker import get_checker
    from app.api.protocol_refine import RefineResponse
    from app.engines.base import EngineError, PromptTooLongError
    from app.engines.factory import open_engine
    from app.engines.hf import ModelLoadError
    from app.refine.loop import refine
    from app.traces.schema import new_id

    try:
        config = config_from(a, settings)
    except ValueError as e:
        ap.error(str(e))
    checker = get_checker(a.task)
    oracle = make_oracle(ap, a, settings, checker)

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
            result = await refine(engine, a.question, checker, config, oracle=oracle, on_event=show)
            return engine.info.model_name, result
        finally:
            await engine.aclose()

    try:
        model, result = asyncio.run(go())
    except (ModelLoadError, PromptTooLongError, ValueError, EngineError) as e:
        print(f"rise refine: error: {e}", file=sys.stderr)
        return 2
    if a.json:  # the object /v1/refine answers (app/api/protocol_refine.py RefineResponse)
        print(json.dumps(RefineResponse(id=new_id("rr"), model=model, **result.to_dict()).model_dump(), indent=2))
    else:
        weights = f", weights: {result.weights}" if result.weights else ""
        print(f"=== final answer: {result.final_answer} (turn {result.final_turn}, stop: {result.stop_reason}, "
              f"votes: {result.votes}{weights})")
    return 0
