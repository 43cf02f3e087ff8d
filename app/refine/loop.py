"""The recursive-introspection loop: answer, get feedback, answer again, for up to K turns.

One engine-agnostic function used alike by the server, `rise refine`, evaluation and RISE data
collection. With an oracle (a reference answer or a verifier) the loop stops at the first correct
turn; without one every turn gets the same feedback and the answers of all turns are voted on.
The oracle only ever sees the model's answers: the reference never enters a prompt.

    rise refine "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?" --reference 40
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Callable, Sequence

from app.answers.protocol import Checker
from app import metrics
from app.engines.base import CALL_SESSION, CALL_TURN, Conversation, Engine, EngineError, Message, PromptTooLongError
from app.refine import policy
from app.refine.checks import Checks, as_checks
from app.refine.deadline import Deadline, as_deadline
from app.refine.feedback import render_feedback
from app.refine.oracles import UNCHECKED, LegacyOracle, Oracle, Verdict, as_oracle, reference_oracle  # noqa: F401
from app.refine.types import RefineConfig, RefineResult, Sample, Turn
from app.refine.vote import tally

EventSink = Callable[[dict], None]
log = logging.getLogger(__name__)


class RefineTimeout(Exception):
    """The deadline passed before the first turn finished."""


async def refine(
    engine: Engine,
    question: str,
    checker: Checker | Checks,
    config: RefineConfig = RefineConfig(),
    oracle: Oracle | LegacyOracle | None = None,
    history: Sequence[Message] = (),
    on_event: EventSink | None = None,
    deadline: float | Deadline | None = None,
    session: str | None = None,
    turn_retries: int = 1,
) -> RefineResult:
    """Run up to `config.max_turns` turns on `question`.

    history: earlier messages (e.g. a system prompt) placed before the question in every prompt.
    on_event: receives {"type": "turn_start" | "delta" | "turn_end", ...} as the work happens:
        `turn_start` only for a turn that runs (the engine took its prompt), with the `feedback` its
        prompt ends with (None on turn 1); `turn_end` names the sample that went on (`chosen_sample`)
        and every sample's answer (`answers`); a turn the deadline cuts short has no `turn_end`.
    deadline: a `time.monotonic()` instant or a `Deadline` (which may be brought forward while the
        loop runs); past it the loop ends with the turns it finished.
    oracle: judges each sample (app/refine/oracles.py); a turn it could not check goes on as
        without an oracle, and its own feedback replaces `config.feedback` for the next turn.
    A later turn whose prompt no longer fits the model's context ends the loop the same way
    (`context_length`); a first turn that does not fit raises PromptTooLongError.
    session: the refinement's id; engine calls see it (`CALL_SESSION`), and a remote engine derives
        from it the session key that keeps each sample's turns on one upstream replica.
    turn_retries: times a turn is run again, same prompt and seed, when the engine broke off
        mid-turn (`EngineError.transient`), unless some of the turn already went to `on_event`
        (a streamed delta is never taken back): counted in rise_turn_retries_total.
    """
    token = CALL_SESSION.set(session)
    try:
        return await _refine(engine, question, checker, config, oracle, history, on_event, deadline, turn_retries)
    finally:
        CALL_SESSION.reset(token)


async def _refine(engine: Engine, question: str, checker: Checker | Checks, config: RefineConfig,
                  oracle: Oracle | LegacyOracle | None, history: Sequence[Message], on_event: EventSink | None,
                  deadline: float | Deadline | None, turn_retries: int) -> RefineResult:
    if not question.strip():
        raise ValueError("question must not be empty")
    emit = on_event or (lambda _e: None)
    retries = _Retries(turn_retries, live=on_event is not None)
    oracle = as_oracle(oracle)
    checks = as_checks(checker)
    deadline = as_deadline(deadline)
    turns: list[Turn] = []
    stop_reason = "max_turns"
    for k in range(1, config.max_turns + 1):
        per_sample = _budget_per_sample(turns, config)
        if per_sample is not None and per_sample < 1:
            stop_reason = "budget"  # too few tokens left for another turn
            break
        if turns:
            turns[-1].feedback = next_feedback(question, turns[-1], config)
        prompt = build_prompt(question, turns, config, history)
        try:
            turn = await _run_turn(engine, k, question, prompt, checks, config, oracle, emit, deadline, per_sample,
                                   retries)
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
        if oracle is None and (early := await policy.stop_reason(turns, config, checks)):
            stop_reason = early
            break
    return await _result(turns, stop_reason, checks, config, oracle is not None)


def _budget_per_sample(turns: Sequence[Turn], config: RefineConfig) -> int | None:
    """The most tokens each sample of the next turn may use within `max_total_tokens` (None: no budget)."""
    if config.max_total_tokens is None:
        return None
    used = sum(s.completion_tokens for t in turns for s in t.samples)
    return min(config.sampling.max_tokens, (config.max_total_tokens - used) // config.samples_per_turn)


def build_prompt(question: str, turns: Sequence[Turn], config: RefineConfig, history: Sequence[Message] = ()) -> list[Message]:
    """The conversation the model sees at the next turn (`full` or `last` window); each turn is
    followed by its feedback (`next_feedback`)."""
    messages: list[Message] = [*history, {"role": "user", "content": question}]
    shown = turns if config.window == "full" else turns[-1:]
    for t in shown:
        feedback = t.feedback if t.feedback is not None else next_feedback(question, t, config)
        messages += [{"role": "assistant", "content": t.text}, {"role": "user", "content": feedback}]
    return messages


def next_feedback(question: str, turn: Turn, config: RefineConfig) -> str:
    """What follows `turn` in the conversation: the oracle's own feedback on the chosen sample when
    it gave one, else the request's template (RISE's sentence by default)."""
    own = turn.samples[turn.chosen].feedback
    return own if own is not None else render_feedback(config.feedback, question)


class _Retries:
    """What a refinement may still spend on turns run again (`turn_retries` per turn); `live`: its
    events reach a client, so a turn that emitted any is never run again."""

    def __init__(self, per_turn: int, live: bool) -> None:
        self.per_turn, self.live = per_turn, live

    def allow(self, error: EngineError, attempt: int, shown: bool) -> bool:
        return error.transient and attempt < self.per_turn and not (self.live and shown)


async def _generate(engine: Engine, prompt: Conversation, params, on_delta, deadline: Deadline | None,
                    retries: _Retries | None, shown: list) -> list:
    """The turn's completions; the engine call run again (same prompt, same seed) while `retries`
    allows it. `shown` is non-empty once a delta of the turn went out."""
    attempt = 0
    while True:
        call = engine.generate([prompt], params, on_delta)
        try:
            [completions] = await (call if deadline is None else deadline.run(call))
            return completions
        except EngineError as e:
            if retries is None or not retries.allow(e, attempt, bool(shown)):
                raise
            attempt += 1
            shown.clear()
            metrics.TURN_RETRIES.labels(engine.info.model_name).inc()
            log.warning("turn broke off (%s); running it again (%d of %d)", e, attempt, retries.per_turn)


async def _run_turn(engine: Engine, k: int, question: str, prompt: Conversation, checks: Checks, config: RefineConfig,
                    oracle: Oracle | None, emit: EventSink, deadline: Deadline | None,
                    max_tokens: int | None = None, retries: _Retries | None = None) -> Turn:
    params = config.sampling
    seed = None if params.seed is None else params.seed + 1000 * (k - 1)
    params = replace(params, n=config.samples_per_turn, seed=seed, logprobs=params.logprobs or config.wants_logprobs,
                     max_tokens=params.max_tokens if max_tokens is None else max_tokens)
    start = time.monotonic()
    first: list[float] = []

    def announce() -> None:
        """`turn_start` once the turn runs (its first tokens, or its end for an engine that streams
        none): a prompt the engine refuses (too long for the context) announces no turn."""
        if not first:
            first.append(time.monotonic() - start)
            # the feedback this turn's prompt ends with (the previous turn's; none before turn 1)
            emit({"type": "turn_start", "turn": k, "feedback": prompt[-1]["content"] if k > 1 else None})

    def on_delta(_i: int, j: int, text: str) -> None:
        announce()
        emit({"type": "delta", "turn": k, "sample": j, "text": text})

    turn_token = CALL_TURN.set(k)  # the engine may count its work by turn
    try:
        completions = await _generate(engine, prompt, params, on_delta, deadline, retries, first)
    finally:
        CALL_TURN.reset(turn_token)
    ttft = first[0] if first else None  # None: the engine streamed no tokens
    announce()
    answers = [None if _cut_mid_number(c) else a
               for c, a in zip(completions, await checks.extract([c.text for c in completions]))]
    verdicts = await _judge(oracle, question, answers, [c.text for c in completions], k)
    samples = []
    for c, answer, v in zip(completions, answers, verdicts):
        samples.append(Sample(c.text, answer, v.correct, c.prompt_tokens, c.completion_tokens, c.finish_reason,
                              policy.confidence(c.token_logprobs, config.confidence) if params.logprobs else None,
                              c.token_logprobs, c.token_texts, feedback=v.feedback))
    turn = Turn(k, samples, await _choose(samples, checks, config), time.monotonic() - start, ttft)
    emit({"type": "turn_end", "turn": k, "answer": turn.answer, "correct": turn.correct, "chosen_sample": turn.chosen,
          "latency_s": round(turn.latency_s, 4), "confidence": samples[turn.chosen].confidence,
          "answers": [s.answer for s in samples]})
    return turn


async def _judge(oracle: Oracle | None, question: str, answers: list[str | None], texts: list[str],
                 k: int) -> list[Verdict]:
    """Each sample's verdict, the samples judged at once (a verifier endpoint is a network call)."""
    if oracle is None:
        return [UNCHECKED] * len(texts)
    return list(await asyncio.gather(*[oracle.judge(question, a, t, k) for a, t in zip(answers, texts)]))


def _cut_mid_number(c) -> bool:
    """A sample the token limit stopped while it was writing a number ("The answer is 15" of 1513):
    whatever number ends it may be cut short, so it casts no vote."""
    return c.finish_reason == "length" and c.text.rstrip()[-1:].isdigit()


async def _choose(samples: list[Sample], checks: Checks, config: RefineConfig) -> int:
    """The sample that continues the conversation: a correct one if the oracle passed any,
    otherwise the first holding the turn's majority answer."""
    for j, s in enumerate(samples):
        if s.correct:
            return j
    if len(samples) == 1:
        return 0
    groups = await checks.clusters([s.answer for s in samples])
    _, positions, _ = tally(groups, config.tie_break, policy.weights_of(samples, config))
    return positions[0] if positions else 0


async def _result(turns: list[Turn], stop_reason: str, checks: Checks, config: RefineConfig,
                  has_oracle: bool) -> RefineResult:
    where = [(t, s) for t in turns for s in t.samples]
    groups = await checks.clusters([s.answer for _, s in where])
    votes = {rep: len(members) for rep, members in groups}
    weights = policy.weights_of([s for _, s in where], config)
    winner, positions, scores = tally(groups, config.tie_break, weights)
    aggregation = config.aggregation if config.aggregation != "confidence" or weights is not None else "majority"
    if stop_reason == "correct" or config.aggregation == "last":
        turn, sample = turns[-1], turns[-1].samples[turns[-1].chosen]
        winner = sample.answer
    else:
        turn, sample = _latest_holding(turns, where, positions)
    correct = sample.correct if has_oracle else None  # None: the oracle could not check it
    result = RefineResult(winner, sample.text, turn.index, votes, stop_reason, turns, has_oracle, correct,
                          aggregation, scores if weights is not None else None)
    result.answer_groups = {where[i][1].answer: g for g, (_, members) in enumerate(groups) for i in members}
    return result


def _latest_holding(turns: list[Turn], where: list[tuple[Turn, Sample]], positions: list[int]) -> tuple[Turn, Sample]:
    """The most recent turn (and sample, the chosen one first) holding the winning answer: its text
    is the most refined version of that answer."""
    held = {id(where[i][1]) for i in positions}
    for t in reversed(turns):
        for s in [t.samples[t.chosen], *t.samples]:
            if id(s) in held:
                return t, s
    return turns[-1], turns[-1].samples[turns[-1].chosen]
