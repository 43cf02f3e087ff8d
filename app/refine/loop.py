"""The recursive-introspection loop: answer, get feedback, answer again, for up to K turns.

One engine-agnostic function used alike by the server, `rise refine`, evaluation and RISE data
collection. With an oracle (a reference answer or a verifier) the loop stops at the first correct
turn; without one every turn gets the same feedback and the answers of all turns are voted on.
The oracle only ever sees the model's answers: the reference never enters a prompt.

    rise refine "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?" --reference 40
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Callable, Sequence

from app.answers.protocol import Checker
from app.engines.base import Conversation, Engine, Message, PromptTooLongError
from app.refine.feedback import render_feedback
from app.refine.types import RefineConfig, RefineResult, Sample, Turn
from app.refine.vote import majority

Oracle = Callable[[str | None, str], bool]  # (extracted answer, full text) -> correct?
EventSink = Callable[[dict], None]


class RefineTimeout(Exception):
    """The deadline passed before the first turn finished."""


def reference_oracle(checker: Checker, reference: str) -> Oracle:
    """An oracle that compares the extracted answer with a reference answer."""
    return lambda answer, _text: checker.equivalent(answer, reference)


async def refine(
    engine: Engine,
    question: str,
    checker: Checker,
    config: RefineConfig = RefineConfig(),
    oracle: Oracle | None = None,
    history: Sequence[Message] = (),
    on_event: EventSink | None = None,
    deadline: float | None = None,
) -> RefineResult:
    """Run up to `config.max_turns` turns on `question`.

    history: earlier messages (e.g. a system prompt) placed before the question in every prompt.
    on_event: receives {"type": "turn_start" | "delta" | "turn_end", ...} as the work happens.
    deadline: a `time.monotonic()` instant; past it the loop ends with the turns it finished.
    A later turn whose prompt no longer fits the model's context ends the loop the same way
    (`context_length`); a first turn that does not fit raises PromptTooLongError.
    """
    if not question.strip():
        raise ValueError("question must not be empty")
    emit = on_event or (lambda _e: None)
    turns: list[Turn] = []
    stop_reason = "max_turns"
    for k in range(1, config.max_turns + 1):
        prompt = build_prompt(question, turns, config, history)
        try:
            turn = await _run_turn(engine, k, prompt, checker, config, oracle, emit, deadline)
        except asyncio.TimeoutError:
            if not turns:
                raise RefineTimeout("the deadline passed before the first turn finished") from None
            stop_reason = "deadline"
            break
        except PromptTooLongError:
            if not turns:
                raise
            stop_reason = "context_length"  # the conversation outgrew the model: keep what it did
            break
        turns.append(turn)
        if oracle is not None and turn.correct:
            stop_reason = "correct"
            break
    return _result(turns, stop_reason, checker, config, oracle is not None)


def build_prompt(question: str, turns: Sequence[Turn], config: RefineConfig, history: Sequence[Message] = ()) -> list[Message]:
    """The conversation the model sees at the next turn (`full` or `last` window)."""
    messages: list[Message] = [*history, {"role": "user", "content": question}]
    feedback = {"role": "user", "content": render_feedback(config.feedback, question)}
    shown = turns if config.window == "full" else turns[-1:]
    for t in shown:
        messages += [{"role": "assistant", "content": t.text}, feedback]
    return messages


async def _run_turn(engine: Engine, k: int, prompt: Conversation, checker: Checker, config: RefineConfig,
                    oracle: Oracle | None, emit: EventSink, deadline: float | None) -> Turn:
    params = config.sampling
    seed = None if params.seed is None else params.seed + 1000 * (k - 1)
    params = replace(params, n=config.samples_per_turn, seed=seed)
    start = time.monotonic()
    first: list[float] = []

    def on_delta(_i: int, j: int, text: str) -> None:
        if not first:
            first.append(time.monotonic() - start)
        emit({"type": "delta", "turn": k, "sample": j, "text": text})

    emit({"type": "turn_start", "turn": k})
    call = engine.generate([prompt], params, on_delta)
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise asyncio.TimeoutError
        [completions] = await asyncio.wait_for(call, remaining)
    else:
        [completions] = await call
    samples = []
    for c in completions:
        answer = checker.extract(c.text)
        correct = None if oracle is None else bool(oracle(answer, c.text))
        samples.append(Sample(c.text, answer, correct, c.prompt_tokens, c.completion_tokens, c.finish_reason))
    turn = Turn(k, samples, _choose(samples, checker, config), time.monotonic() - start, first[0] if first else None)
    emit({"type": "turn_end", "turn": k, "answer": turn.answer, "correct": turn.correct,
          "latency_s": round(turn.latency_s, 4)})
    return turn


def _choose(samples: list[Sample], checker: Checker, config: RefineConfig) -> int:
    """The sample that continues the conversation: a correct one if the oracle passed any,
    otherwise the first holding the turn's majority answer."""
    for j, s in enumerate(samples):
        if s.correct:
            return j
    winner, _ = majority([s.answer for s in samples], checker.equivalent, config.tie_break)
    for j, s in enumerate(samples):
        if winner is not None and s.answer is not None and checker.equivalent(s.answer, winner):
            return j
    return 0


def _result(turns: list[Turn], stop_reason: str, checker: Checker, config: RefineConfig, has_oracle: bool) -> RefineResult:
    answers = [s.answer for t in turns for s in t.samples]
    winner, votes = majority(answers, checker.equivalent, config.tie_break)
    if stop_reason == "correct" or config.aggregation == "last":
        turn, sample = turns[-1], turns[-1].samples[turns[-1].chosen]
        winner = sample.answer
    else:
        turn, sample = _latest_holding(turns, winner, checker)
    correct = bool(sample.correct) if has_oracle else None
    return RefineResult(winner, sample.text, turn.index, votes, stop_reason, turns, has_oracle, correct)


def _latest_holding(turns: list[Turn], answer: str | None, checker: Checker) -> tuple[Turn, Sample]:
    """The most recent turn (and sample, the chosen one first) whose answer is `answer`: its text
    is the most refined version of the winning answer."""
    for t in reversed(turns):
        for s in [t.samples[t.chosen], *t.samples]:
            if answer is not None and s.answer is not None and checker.equivalent(s.answer, answer):
                return t, s
    return turns[-1], turns[-1].samples[turns[-1].chosen]
