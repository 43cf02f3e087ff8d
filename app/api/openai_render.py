"""The chat API's answers: a `chat.completion`, or the `chat.completion.chunk`s of a stream.

`content` is the final turn's text. The turns are reasoning: each as a "[turn k]" line, its text,
then an "[answer: ... (correct|incorrect|unchecked)]" line. A stream sends them as they are
produced, a non-streamed message carries them whole; both under vLLM's `reasoning` and the older
`reasoning_content`, or one of them (RISE_REASONING_FIELD), always in the same delta or message.
With several samples per turn a stream sends each turn's text when the turn ends: the text of the
sample that went on, as the non-streamed `reasoning` has it (the samples' tokens are not shown).
"""

from __future__ import annotations

from typing import Callable

from app.api.serving import sse
from app.refine.types import RefineResult

REASONING_FIELDS = {"both": ("reasoning", "reasoning_content"), "reasoning": ("reasoning",),
                    "reasoning_content": ("reasoning_content",)}


def turn_start(turn: int) -> str:
    return f"[turn {turn}]\n"


def turn_end(answer: str | None, correct: bool | None) -> str:
    verdict = {True: "correct", False: "incorrect", None: "unchecked"}[correct]
    return f"\n[answer: {'none' if answer is None else answer} ({verdict})]\n"


def reasoning_text(r: RefineResult) -> str:
    """The turns as a stream sends them (for each turn, the text of the sample that went on)."""
    return "".join(turn_start(t.index) + t.text + turn_end(t.answer, t.correct) for t in r.turns)


def reasoning(text: str, setting: str) -> dict:
    return {name: text for name in REASONING_FIELDS[setting]}


def final_sample(r: RefineResult):
    """The sample whose text is the choice's content (None for a choice with no finished turn)."""
    if not r.turns:
        return None
    turn = next(t for t in r.turns if t.index == r.final_turn)
    return next((s for s in turn.samples if s.text == r.final_text), turn.samples[turn.chosen])


def finish_reason(r: RefineResult) -> str:
    sample = final_sample(r)
    if sample is None:  # a choice cut off by the deadline before its first turn finished
        return "length"
    return "length" if sample.finish_reason == "length" else "stop"


def logprobs(r: RefineResult, wanted: bool) -> dict | None:
    """OpenAI's `logprobs` of the content's tokens (its final turn's sample), when asked; an engine
    that gives none leaves `content` null."""
    sample = final_sample(r) if wanted else None
    if sample is None:
        return None
    if sample.token_logprobs is None or sample.token_texts is None:
        return {"content": None, "refusal": None}
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8", "replace")), "top_logprobs": []}
                        for t, lp in zip(sample.token_texts, sample.token_logprobs)], "refusal": None}


def usage(results: list[RefineResult]) -> dict:
    p = sum(r.prompt_tokens for r in results)
    c = sum(r.completion_tokens for r in results)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def trace(r: RefineResult) -> dict:
    d = r.to_dict()
    d.pop("final_text")
    return d


def completion(cid: str, created: int, model: str, results: list[RefineResult], reasoning_field: str,
               want_logprobs: bool = False) -> dict:
    """A non-streamed `chat.completion`; `rise.choices` holds each choice's trace."""
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": i, "finish_reason": finish_reason(r), "logprobs": logprobs(r, want_logprobs),
                     "message": {"role": "assistant", "content": r.final_text,
                                 **reasoning(reasoning_text(r), reasoning_field)}}
                    for i, r in enumerate(results)],
        "usage": usage(results),
        "rise": {"choices": [trace(r) for r in results]},
    }


def chunk_renderer(cid: str, created: int, model: str, include_usage: bool, reasoning_field: str,
                   want_logprobs: bool = False, samples: int = 1) -> Callable[[dict], list[str]]:
    """Turns the loop's events (tagged with their choice) into SSE chunks: a first chunk with the
    role, the turns as reasoning deltas, then per choice the answer as `content` and a chunk with
    the finish reason and the trace (`rise`), the usage if asked, and `[DONE]`. With `samples` > 1
    per turn, each sample's tokens are held and the chosen one's text goes out at the turn's end."""

    def chunk(choices: list[dict], **extra) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": choices, **extra}
        if include_usage and "usage" not in extra:
            body["usage"] = None
        return sse(body)

    def delta(i: int, d: dict, finish: str | None = None) -> dict:
        return {"index": i, "delta": d, "finish_reason": finish, "logprobs": None}

    started = set()
    held: dict[tuple[int, int, int], list[str]] = {}  # (choice, turn, sample) -> text, when samples > 1

    def render(event: dict) -> list[str]:
        kind = event["type"]
        if kind == "error":
            return [sse(event["error"]), sse("[DONE]")]
        if kind == "result":
            results: list[RefineResult] = event["result"]
            out = [chunk([{**delta(i, {"content": r.final_text}), "logprobs": logprobs(r, want_logprobs)}])
                   for i, r in enumerate(results)]
            out += [chunk([delta(i, {}, finish_reason(r))], rise={"index": i, **trace(r)})
                    for i, r in enumerate(results)]
            if include_usage:
                out.append(chunk([], usage=usage(results)))
            return out + [sse("[DONE]")]
        i = event["choice"]
        out = []
        if i not in started:
            started.add(i)
            out.append(chunk([delta(i, {"role": "assistant", "content": ""})]))
        if kind == "turn_start":
            text = turn_start(event["turn"])
        elif kind == "delta":
            if samples > 1:  # which sample goes on is known only at the turn's end
                held.setdefault((i, event["turn"], event["sample"]), []).append(event["text"])
                return out
            text = event["text"]
        elif kind == "turn_end":
            chosen = "".join(held.get((i, event["turn"], event["chosen_sample"]), ()))
            for j in range(samples):
                held.pop((i, event["turn"], j), None)
            text = chosen + turn_end(event["answer"], event["correct"])
        else:  # an event the chat stream does not show
            return out
        out.append(chunk([delta(i, reasoning(text, reasoning_field))]))
        return out

    return render
