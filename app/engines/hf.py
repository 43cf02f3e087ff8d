"""The embedded engine: any HF-format model directory, run with transformers + torch in-process.

Concurrent callers' prompts are queued and a scheduler thread gathers what is waiting (up to
`max_batch_size` sequences) into one batched, KV-cached decode; each sequence has its own sampling
settings, seed, stop strings and token budget, and leaves the batch as soon as it is done.

    python -m app.engines.hf models/rise-synth "Sam has 3 apples. He buys 4 more. How many apples does Sam have now?"
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from app.engines.base import (
    Completion,
    Conversation,
    DeltaCallback,
    EngineError,
    EngineInfo,
    PromptTooLongError,
    SamplingParams,
    encode_chat,
)
from app.engines.sampling import sample_next

log = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """The path is not a loadable HF model directory with a chat template."""


@dataclass
class _Row:
    """One sequence to generate: a prompt's sample."""

    ids: list[int]
    params: SamplingParams
    seed: int | None
    deliver: callable  # deliver(completion | exception), thread-safe
    emit: callable | None  # emit(text_delta), thread-safe, or None
    max_new: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    out: list[int] = field(default_factory=list)
    text: str = ""
    generated: int = 0  # tokens sampled, EOS included
    sent: int = 0
    finish: str | None = None


class HFEngine:
    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_batch_size: int = 32,
        batch_wait_s: float = 0.002,
        model_name: str | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a model directory (no config.json)")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(self.device).eval()
        except Exception as e:  # noqa: BLE001 - a bad directory has many ways to fail
            raise ModelLoadError(f"cannot load a model from {path}: {e}") from e
        if not getattr(self.tokenizer, "chat_template", None):
            raise ModelLoadError(f"{path} has no chat template in its tokenizer")
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self._info = EngineInfo(
            model_name=model_name or path.name,
            max_context=int(getattr(self.model.config, "max_position_embeddings", 2048)),
            extra={"engine": "hf", "device": str(self.device), "dtype": str(torch_dtype).removeprefix("torch.")},
        )
        # transformers renamed `past_key_values` to `cache` (5.2x); speak whichever this one knows.
        self._cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_s
        self.batch_sizes: list[int] = []  # recent batch sizes
        self.on_batch = None  # optional hook: on_batch(batch_size), e.g. a metrics histogram
        self._queue: queue.Queue[_Row | None] = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="hf-engine", daemon=True)
        self._thread.start()

    @property
    def info(self) -> EngineInfo:
        return self._info

    def encode(self, conversation: Conversation) -> list[int]:
        return encode_chat(self.tokenizer, conversation)

    async def generate(
        self,
        prompts: Sequence[Conversation],
        params: SamplingParams,
        on_delta: DeltaCallback | None = None,
    ) -> list[list[Completion]]:
        if self._closed:
            raise EngineError("engine is closed")
        loop = asyncio.get_running_loop()
        encoded = [self.encode(p) for p in prompts]
        limit = self._info.max_context
        for i, ids in enumerate(encoded):
            if len(ids) >= limit:
                raise PromptTooLongError(
                    f"prompt {i} has {len(ids)} tokens; the model's context is {limit} tokens"
                )
        futures: list[list[asyncio.Future]] = []
        rows: list[_Row] = []
        for i, ids in enumerate(encoded):
            futures.append([])
            for j in range(params.n):
                fut = loop.create_future()
                futures[-1].append(fut)
                emit = None
                if on_delta is not None:
                    emit = _threadsafe(loop, lambda text, i=i, j=j: on_delta(i, j, text))
                rows.append(_Row(
                    ids=ids, params=params,
                    seed=None if params.seed is None else params.seed + j,
                    deliver=_threadsafe(loop, lambda res, fut=fut: _resolve(fut, res)),
                    emit=emit, max_new=min(params.max_tokens, limit - len(ids)),
                ))
        for row in rows:
            self._queue.put(row)
        try:
            return [[await f for f in per_prompt] for per_prompt in futures]
        except asyncio.CancelledError:
            for row in rows:
                row.cancelled.set()
            raise

    def pending(self) -> int:
        """Sequences waiting for a batch."""
        return self._queue.qsize()

    async def health(self) -> bool:
        return self._thread.is_alive() and not self._closed

    async def aclose(self) -> None:
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, 10)

    # -- scheduler thread -------------------------------------------------------------------

    def _serve(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            row = self._queue.get()
            if row is None:
                return
            batch = [row]
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch_size:
                try:
                    nxt = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            batch = [r for r in batch if not _skip_cancelled(r)]
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            del self.batch_sizes[:-1000]
            if self.on_batch is not None:
                self.on_batch(len(batch))
            try:
                self._decode(batch)
            except Exception as e:  # noqa: BLE001 - one bad batch must not kill the engine
                log.exception("batch of %d failed", len(batch))
                for r in batch:
                    if r.finish is None:
                        r.deliver(EngineError(f"generation failed: {type(e).__name__}: {e}"))

    def _decode(self, batch: list[_Row]) -> None:
        dev = self.device
        width = max(len(r.ids) for r in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, r in enumerate(batch):
            ids[b, width - len(r.ids):] = torch.tensor(r.ids)
            mask[b, width - len(r.ids):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        gens = [_generator(r.seed) for r in batch]
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        cache, logits = getattr(out, self._cache_kw), out.logits[:, -1, :]
        last_pos = pos[:, -1]
        live = list(range(len(batch)))
        for step in range(max(r.max_new for r in batch)):
            tokens = sample_next(logits, [r.params for r in batch], gens)
            for b in live:
                self._advance(batch[b], int(tokens[b]), step)
            live = [b for b in live if batch[b].finish is None]
            if not live:
                break
            mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype, device=dev)], dim=1)
            last_pos = last_pos + 1
            out = self.model(input_ids=tokens.view(-1, 1).to(dev), attention_mask=mask,
                             position_ids=last_pos.view(-1, 1), use_cache=True, **{self._cache_kw: cache})
            cache, logits = getattr(out, self._cache_kw), out.logits[:, -1, :]

    def _advance(self, r: _Row, token: int, step: int) -> None:
        """Append one token to a row; finish it on EOS, a stop string, its budget or cancellation."""
        if r.cancelled.is_set():
            return self._finish(r, "abort")
        r.generated += 1
        if token in self.eos_ids:
            return self._finish(r, "stop")
        r.out.append(token)
        r.text = self.tokenizer.decode(r.out, skip_special_tokens=True)
        for s in r.params.stop:
            at = r.text.find(s, max(0, r.sent - len(s)))
            if at >= 0:
                r.text = r.text[:at]
                return self._finish(r, "stop")
        if len(r.out) >= r.max_new:
            return self._finish(r, "length")
        self._emit(r, final=False)

    def _emit(self, r: _Row, final: bool) -> None:
        # Hold back a trailing partial UTF-8 character (and, for stop strings, a possible prefix).
        end = len(r.text)
        if not final:
            if r.text.endswith("\ufffd"):
                end -= 1
            if r.params.stop:
                end = max(r.sent, end - max(len(s) for s in r.params.stop) + 1)
        if r.emit is not None and end > r.sent:
            r.emit(r.text[r.sent:end])
        r.sent = max(r.sent, end)

    def _finish(self, r: _Row, reason: str) -> None:
        r.finish = reason
        self._emit(r, final=True)
        r.deliver(Completion(text=r.text, prompt_tokens=len(r.ids), completion_tokens=r.generated, finish_reason=reason))


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed if seed is not None else torch.seed())
    return g


def _skip_cancelled(r: _Row) -> bool:
    if r.cancelled.is_set():
        r.finish = "abort"
        r.deliver(Completion("", len(r.ids), 0, "abort"))
        return True
    return False


def _threadsafe(loop: asyncio.AbstractEventLoop, fn):
    def call(arg):
        try:
            loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # the caller's loop is gone
            pass
    return call


def _resolve(fut: asyncio.Future, result) -> None:
    if fut.done():
        return
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)


if __name__ == "__main__":
    import sys

    async def _main() -> None:
        engine = HFEngine(sys.argv[1])
        [[c]] = await engine.generate([[{"role": "user", "content": sys.argv[2]}]], SamplingParams())
        print(c)
        await engine.aclose()

    asyncio.run(_main())
