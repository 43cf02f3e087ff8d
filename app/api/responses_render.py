"""The Responses API's answers: the `response` object, and the Server-Sent Events of a stream.

- `output`: a `reasoning` item per turn that ran, its text as `reasoning_text` content (and, when
  `reasoning.summary` asks, a summary: "Turn k: answer A (verdict)"); then the assistant `message`
  whose `output_text` is the chosen turn's text, the final answer. A stream sends each turn as it
  runs, before anyone can know which turn will be chosen, so every turn is a reasoning item, and
  the message repeats the chosen turn's text (chat's `reasoning` and `content` do the same). A turn
  the deadline cut short ends its item `incomplete` in a stream (and its last response); the
  non-streamed and stored response list the finished turns only.
- `usage`: `input_tokens` and `output_tokens` over every turn and sample, as chat's `usage`;
  `output_tokens_details.reasoning_tokens` is all of the output but the answer's own tokens (the
  chosen sample's): with one sample, the tokens of the turns before the chosen one (and after it).
- `status`: `completed`, or `incomplete` with `incomplete_details.reason`: `max_output_tokens`
  (the token budget ended the loop, or cut the answer short), `deadline` (the request's timeout
  ended it early) or `context_length` (the next turn would not fit the model's context).
- `rise`: the per-turn trace, as chat's `rise.choices[0]`.

Ids: the response's is its trace's (`resp_` + 32 hex); its items' are derived from it (`rs_<hex>_<turn>`,
`msg_<hex>`), so that a stored response reads back with the same ids.
"""

from __future__ import annotations

import time

from app.api import openai_render
from app.api.serving import sse
from app.refine.types import RefineResult

INCOMPLETE = {"budget": "max_output_tokens", "deadline": "deadline", "context_length": "context_length"}
VERDICT = {True: "correct", False: "incorrect", None: "unchecked"}


def final_sample(result: dict) -> dict | None:
    """The sample (of a result's dict form) whose text is the answer; None when no turn finished."""
    turn = next((t for t in result["turns"] if t["turn"] == result["final_turn"]), None)
    if turn is None:
        return None
    chosen = turn["samples"][turn["chosen_sample"]]
    return next((s for s in turn["samples"] if s["text"] == result["final_text"]), chosen)


def incomplete_reason(result: dict) -> str | None:
    sample = final_sample(result)
    if sample is not None and sample["finish_reason"] == "length":
        return "max_output_tokens"
    return INCOMPLETE.get(result["stop_reason"])


def usage(result: dict) -> dict:
    u = result["usage"]
    sample = final_sample(result)
    answer = sample["completion_tokens"] if sample is not None else 0
    return {"input_tokens": u["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": u["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": u["completion_tokens"] - answer},
            "total_tokens": u["total_tokens"]}


def summary_text(turn: int, answer: str | None, correct: bool | None) -> str:
    return f"Turn {turn}: answer {'none' if answer is None else answer} ({VERDICT[correct]})"


def reasoning_item(hex_id: str, turn: int, text: str, summary: str | None, status: str = "completed") -> dict:
    return {"id": f"rs_{hex_id}_{turn}", "type": "reasoning", "status": status,
            "summary": [] if summary is None else [{"type": "summary_text", "text": summary}],
            "content": [{"type": "reasoning_text", "text": text}]}


def text_part(text: str, logprobs: list | None) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def message_item(hex_id: str, text: str, status: str, logprobs: list | None = None) -> dict:
    return {"id": f"msg_{hex_id}", "type": "message", "role": "assistant", "status": status,
            "content": [text_part(text, logprobs)]}


def live_logprobs(result: RefineResult, wanted: bool) -> list | None:
    """The answer's token log-probabilities, as `output_text.logprobs` (include
    `message.output_text.logprobs`): known while serving only, not kept with a stored response."""
    if not wanted:
        return None
    return (openai_render.logprobs(result, True) or {}).get("content") or []


def output_of(hex_id: str, result: dict, summaries: bool, logprobs: list | None = None) -> list[dict]:
    status = "incomplete" if incomplete_reason(result) else "completed"
    return [*(reasoning_item(hex_id, t["turn"], t["text"], summary_text(t["turn"], t["answer"], t["correct"])
                             if summaries else None) for t in result["turns"]),
            message_item(hex_id, result["final_text"], status, logprobs)]


def response_object(rid: str, model: str, echo: dict, result: dict | None = None, output: list | None = None,
                    status: str | None = None, error: dict | None = None) -> dict:
    """The `response`: `echo` holds the request's own fields (app/api/routes/responses.py `echo`),
    `result` the loop's result as a dict (None while it runs, or when it failed)."""
    reason = incomplete_reason(result) if result is not None else None
    if status is None:
        status = "incomplete" if reason else "completed"
    if output is None:
        output = output_of(rid.removeprefix("resp_"), result, bool(echo["reasoning"]["summary"])) if result else []
    trace = None
    if result is not None:
        trace = {k: v for k, v in result.items() if k != "final_text"}
    return {"id": rid, "object": "response", "created_at": echo["created_at"], "status": status,
            "completed_at": echo.get("completed_at") if status in ("completed", "incomplete") else None,
            "error": error, "incomplete_details": {"reason": reason} if status == "incomplete" else None,
            "instructions": echo["instructions"], "max_output_tokens": echo["max_output_tokens"],
            "metadata": echo["metadata"], "model": model, "output": output,
            "parallel_tool_calls": echo["parallel_tool_calls"], "previous_response_id": echo["previous_response_id"],
            "reasoning": echo["reasoning"], "store": echo["store"], "temperature": echo["temperature"],
            "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": echo["tool_choice"],
            "tools": [], "top_p": echo["top_p"], "truncation": "disabled", "background": False,
            "service_tier": "default", "usage": usage(result) if result is not None else None, "user": echo["user"],
            "rise": trace}


class StreamRenderer:
    """The loop's events as the Responses API's stream: `response.created` and `response.in_progress`
    (`start`); per turn `response.output_item.added` (a reasoning item), `content_part.added`,
    `reasoning_text.delta`s, `reasoning_text.done`, `content_part.done`, the summary's events when
    asked, `output_item.done`; then the message's `output_item.added`, `content_part.added`,
    `output_text.delta`, `output_text.done`, `content_part.done`, `output_item.done`; and last
    `response.completed` (or `response.incomplete`) with the whole response, or `response.failed`.
    Every event has its `sequence_number`, from 0. With several samples per turn, a turn's text
    (the chosen sample's) is sent when the turn ends, as chat's stream does."""

    def __init__(self, rid: str, model: str, echo: dict, samples: int, logprobs: bool) -> None:
        self.rid, self.hex, self.model, self.echo = rid, rid.removeprefix("resp_"), model, echo
        self.samples, self.logprobs, self.summaries = samples, logprobs, bool(echo["reasoning"]["summary"])
        self.seq = 0
        self.items: list[dict] = []  # the output as sent so far (each item's last form)
        self.open: dict[int, tuple[int, list[str]]] = {}  # turn -> (output index, its text so far)
        self.held: dict[tuple[int, int], list[str]] = {}  # (turn, sample) -> text, when samples > 1

    def _event(self, kind: str, **fields) -> str:
        out = sse({"type": kind, "sequence_number": self.seq, **fields}, kind)
        self.seq += 1
        return out

    def _response(self, **kw) -> dict:
        return response_object(self.rid, self.model, self.echo, **kw)

    def start(self) -> list[str]:
        first = self._response(status="in_progress")
        return [self._event("response.created", response=first), self._event("response.in_progress", response=first)]

    def _open(self, turn: int) -> list[str]:
        index = len(self.items)
        item = reasoning_item(self.hex, turn, "", None, "in_progress")
        item["content"] = []
        self.items.append(item)
        self.open[turn] = (index, [])
        ids = {"item_id": item["id"], "output_index": index}
        return [self._event("response.output_item.added", output_index=index, item=item),
                self._event("response.content_part.added", **ids, content_index=0,
                            part={"type": "reasoning_text", "text": ""})]

    def _delta(self, turn: int, text: str) -> list[str]:
        index, parts = self.open[turn]
        parts.append(text)
        return [self._event("response.reasoning_text.delta", item_id=self.items[index]["id"], output_index=index,
                            content_index=0, delta=text)]

    def _close(self, turn: int, summary: str | None, status: str = "completed") -> list[str]:
        index, parts = self.open.pop(turn)
        text = "".join(parts)
        item = reasoning_item(self.hex, turn, text, summary, status)
        self.items[index] = item
        ids = {"item_id": item["id"], "output_index": index}
        out = [self._event("response.reasoning_text.done", **ids, content_index=0, text=text),
               self._event("response.content_part.done", **ids, content_index=0,
                           part={"type": "reasoning_text", "text": text})]
        if summary is not None:
            part = {"type": "summary_text", "text": summary}
            out += [self._event("response.reasoning_summary_part.added", **ids, summary_index=0,
                                part={"type": "summary_text", "text": ""}),
                    self._event("response.reasoning_summary_text.delta", **ids, summary_index=0, delta=summary),
                    self._event("response.reasoning_summary_text.done", **ids, summary_index=0, text=summary),
                    self._event("response.reasoning_summary_part.done", **ids, summary_index=0, part=part)]
        return out + [self._event("response.output_item.done", output_index=index, item=item)]

    def _close_all(self) -> list[str]:
        """Turns the deadline cut short: their items end `incomplete` (the response lists finished turns)."""
        return [e for turn in list(self.open) for e in self._close(turn, None, "incomplete")]

    def _message(self, result: RefineResult, status: str) -> list[str]:
        index, logprobs = len(self.items), live_logprobs(result, self.logprobs)
        item = message_item(self.hex, result.final_text, status, logprobs)
        ids = {"item_id": item["id"], "output_index": index}
        part = text_part(result.final_text, logprobs)
        out = [self._event("response.output_item.added", output_index=index,
                           item={**item, "status": "in_progress", "content": []}),
               self._event("response.content_part.added", **ids, content_index=0, part=text_part("", None)),
               self._event("response.output_text.delta", **ids, content_index=0, delta=result.final_text,
                           logprobs=logprobs or []),
               self._event("response.output_text.done", **ids, content_index=0, text=result.final_text,
                           logprobs=logprobs or []),
               self._event("response.content_part.done", **ids, content_index=0, part=part),
               self._event("response.output_item.done", output_index=index, item=item)]
        self.items.append(item)
        return out

    def __call__(self, event: dict) -> list[str]:
        kind = event["type"]
        if kind == "turn_start":
            return self._open(event["turn"]) if self.samples == 1 else []
        if kind == "delta":
            if self.samples == 1:
                return self._delta(event["turn"], event["text"])
            self.held.setdefault((event["turn"], event["sample"]), []).append(event["text"])
            return []
        if kind == "turn_end":
            turn, out = event["turn"], []
            if self.samples > 1:  # which sample goes on is known only now
                chosen = "".join(self.held.get((turn, event["chosen_sample"]), ()))
                for j in range(self.samples):
                    self.held.pop((turn, j), None)
                out = self._open(turn) + self._delta(turn, chosen)
            summary = summary_text(turn, event["answer"], event["correct"]) if self.summaries else None
            return out + self._close(turn, summary)
        if kind == "result":
            out = self._close_all()
            result: RefineResult = event["result"]
            whole = result.to_dict()
            status = "incomplete" if incomplete_reason(whole) else "completed"
            out += self._message(result, status)
            done = self._response(result=whole, output=self.items, status=status)
            return out + [self._event(f"response.{status}", response=done)]
        if kind == "error":
            out = self._close_all()
            error = event["error"]["error"]
            failed = self._response(status="failed", output=self.items,
                                    error={"code": error.get("code") or error.get("type"), "message": error["message"]})
            return out + [self._event("response.failed", response=failed)]
        return []


def render_stored(row: dict, body: dict) -> dict:
    """A stored response (a trace row and its parsed body) as `GET /v1/responses/{id}` answers it."""
    result = body["choices"][0]
    return response_object(row["id"], row["model"], body["response"], result=result)


def now() -> float:
    return round(time.time(), 3)

