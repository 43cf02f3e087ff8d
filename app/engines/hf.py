"""The embedded engine: any HF-format model directory, run with transformers + torch in-process.

Concurrent callers' prompts are queued; a scheduler thread runs one batch of sequences (up to
`max_batch_size`) step by step. Between two decode steps waiting sequences join (their prompts
prefilled as a group straight into their KV slots, each distinct prompt once, after its longest
prefix in the prefix cache) and finished ones leave (their prompt + answer KV kept for the next turn).
Each sequence has its own sampling settings, seed, stop strings and token budget.

    python -m app.engines.hf models/rise-synth "Sam has 3 apples. He buys 4 more. How many apples does Sam have now?"
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import queue
import threading
import time
from functools import partial
from pathlib import Path
from typing import Sequence

import torch

from app.engines.base import (
    CALL_TURN,
    Completion,
    Conversation,
    DeltaCallback,
    EngineError,
    EngineInfo,
    PromptTooLongError,
    SamplingParams,
    encode_chat,
)
from app.engines.hf_batch import Plan, Row, RunningBatch, plan_adapters, prefill_groups, slot_mask
from app.engines.prefix_cache import PrefixCache, space
from app.engines.sampling import row_generator, sample_next, token_logprobs
from app.engines.speculative import SpecConfig, Speculator

log = logging.getLogger(__name__)


class ModelLoadError(ValueError):
    """The path is not a loadable HF model directory with a chat template."""


class HFEngine:
    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_batch_size: int = 32,
        batch_wait_s: float = 0.002,
        prefix_cache_mb: float = 256,
        join_wait_s: float = 0.05,
        model_name: str | None = None,
        cuda_graphs: bool = True,
        static_decode: bool | None = None,
        speculative: SpecConfig | None = None,
        lora: dict[str, str] | None = None,
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
        self.lora = None  # LoRA adapters applied per sequence, in mixed batches (app/engines/adapters.py)
        if lora:
            from app.engines.adapters import LoraSet

            try:
                self.lora = LoraSet(self.model, lora)
            except Exception as e:  # noqa: BLE001 - a bad adapter directory has many ways to fail
                raise ModelLoadError(f"cannot load the LoRA adapters {lora} onto {path}: {e}") from e
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self._info = EngineInfo(
            model_name=model_name or path.name,
            max_context=int(getattr(self.model.config, "max_position_embeddings", 2048)),
            extra={"engine": "hf", "device": str(self.device), "dtype": str(torch_dtype).removeprefix("torch.")},
        )
        # transformers renamed `past_key_values` to `cache` (5.2x); speak whichever this one knows.
        forward_params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in forward_params else "past_key_values"
        self._forward_kw = {"logits_to_keep": 1} if "logits_to_keep" in forward_params else {}
        self._kv_shapes: list[tuple[int, int]] = []  # each layer's KV (heads, head_dim), found by the scheduler
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20))
        self.join_wait_s = join_wait_s
        self.join_fraction = 4  # join once the waiting rows are a quarter of the batch
        self._waiting: list[Row] = []  # taken from the queue by the scheduler, not yet in the batch
        self._outbox: list = []  # (event loop, fn, args) to deliver after this step
        self._closing = False
        self.max_batch_size = max_batch_size
        # decode: the eager step (the reference) or the static-shape one (app/engines/cuda_graphs.py), by
        # default on CUDA with RISE_CUDA_GRAPHS; graphs are captured only there
        self._static_wanted = cuda_graphs and self.device.type == "cuda" if static_decode is None else static_decode
        self._capture = cuda_graphs and self.device.type == "cuda"
        if self.lora is not None:  # rows choose their adapters: the eager step
            self._static_wanted = self._capture = False
        self._static = None
        self.batch_wait_s = batch_wait_s
        self.spec = Speculator(speculative or SpecConfig())  # prompt-lookup speculation (engines/speculative.py)
        self.batch_sizes: list[int] = []  # recent batch sizes
        self.on_batch = None  # optional hook: on_batch(batch_size), e.g. a metrics histogram
        self._queue: queue.Queue[Row | None] = queue.Queue()
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
        adapter = _adapter(self.lora)
        encoded = await asyncio.to_thread(lambda: [self.encode(p) for p in prompts])  # a long prompt: 1 s and more
        limit = self._info.max_context
        for i, ids in enumerate(encoded):
            if len(ids) >= limit:
                which = "the prompt" if len(encoded) == 1 else f"prompt {i}"
                raise PromptTooLongError(f"{which} has {len(ids)} tokens; the model's context is {limit} tokens")
        futures: list[list[asyncio.Future]] = []
        rows: list[Row] = []
        for i, ids in enumerate(encoded):
            futures.append([])
            for j in range(params.n):
                fut = loop.create_future()
                futures[-1].append(fut)
                emit = None
                if on_delta is not None:
                    emit = lambda text, i=i, j=j: self._post(loop, on_delta, i, j, text)  # noqa: E731
                rows.append(Row(
                    ids=ids, params=params,
                    gen=row_generator(None if params.seed is None else params.seed + j),
                    deliver=lambda res, fut=fut: self._post(loop, _resolve, fut, res),
                    emit=emit, max_new=min(params.max_tokens, limit - len(ids)), turn=CALL_TURN.get() or 0,
                    adapter=adapter,
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
        """Sequences waiting to join the batch."""
        return self._queue.qsize() + len(self._waiting)

    async def health(self) -> bool:
        return self._thread.is_alive() and not self._closed

    async def aclose(self) -> None:
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, 10)

    # -- scheduler thread -------------------------------------------------------------------

    def _serve(self) -> None:
        torch.set_grad_enabled(False)
        probe = self.model(input_ids=torch.tensor([[self.pad_id]], device=self.device), use_cache=True)
        self._kv_shapes = [(layer.keys.shape[1], layer.keys.shape[3]) for layer in getattr(probe, self._cache_kw).layers]
        if self._static_wanted:
            from app.engines.cuda_graphs import static_decoder

            self._static = static_decoder(self._forward, self._kv_shapes, self.model.dtype, self.device,
                                          self._info.max_context, self.max_batch_size, self.pad_id, self._capture)
        batch = self._new_batch()
        while True:
            self._flush()
            joining = self._admit(len(batch))
            if joining is None:
                for r in batch.rows:
                    if r.finish is None:
                        r.deliver(EngineError("engine is closed"))
                self._flush()
                return
            try:
                if joining:
                    self._prefill(batch, joining)
                    self.batch_sizes.append(len(batch))
                    del self.batch_sizes[:-1000]
                    if self.on_batch is not None:
                        self.on_batch(len(batch))
                if len(batch):
                    self._step(batch)
            except Exception as e:  # noqa: BLE001 - one bad batch must not kill the engine
                log.exception("batch of %d failed", len(batch) + len(joining))
                for r in {id(r): r for r in batch.rows + joining}.values():
                    if r.finish is None:
                        r.finish = "abort"
                        r.deliver(EngineError(f"generation failed: {type(e).__name__}: {e}"))
                batch = self._new_batch()

    def _new_batch(self) -> RunningBatch:
        if self._static is not None:
            return self._static.reset()
        return RunningBatch(self.max_batch_size, self._kv_shapes, self.model.dtype, self.device, self._info.max_context)

    def _admit(self, running: int) -> list[Row] | None:
        """Rows to join the batch now. An idle engine blocks for one and gathers whoever comes
        within `batch_wait_s`. A running batch takes the waiting rows once there are enough of them
        (a quarter of the batch) or the oldest has waited `join_wait_s`: each join costs a prefill
        call, so joins are grouped. None: the engine is closing."""
        if not running and not self._waiting and not self._closing:
            self._take(self._queue.get())
            deadline = time.monotonic() + self.batch_wait_s
            while not self._closing and (left := deadline - time.monotonic()) > 0:
                try:
                    self._take(self._queue.get(timeout=left))
                except queue.Empty:
                    break
        while True:
            try:
                self._take(self._queue.get_nowait())
            except queue.Empty:
                break
        self._waiting = [r for r in self._waiting if not _skip_cancelled(r)]
        if not self._waiting:
            return None if self._closing and not running else []
        room = self.max_batch_size - running
        enough = len(self._waiting) >= max(1, running // self.join_fraction) or self._closing
        if running and (room <= 0 or not (enough or time.monotonic() - self._waiting[0].queued_at >= self.join_wait_s)):
            return []
        rows, self._waiting = self._waiting[:room], self._waiting[room:]
        return rows

    def _post(self, loop: asyncio.AbstractEventLoop, fn, *args) -> None:
        """Queue a call for the caller's event loop; `_flush` sends each step's calls in one go."""
        self._outbox.append((loop, fn, args))

    def _flush(self) -> None:
        """Hand the queued deltas and results to their event loops, in order, one wake-up per loop."""
        if not self._outbox:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for loop, fn, args in self._outbox:
            by_loop.setdefault(loop, []).append((fn, args))
        self._outbox = []
        for loop, calls in by_loop.items():
            try:
                loop.call_soon_threadsafe(_run_calls, calls)
            except RuntimeError:  # the caller's loop is gone
                pass

    def _take(self, row: Row | None) -> None:
        if row is None:
            self._closing = True
        else:
            self._waiting.append(row)

    def _prefill(self, batch: RunningBatch, rows: list[Row]) -> None:
        """Prefill the joining rows' prompts into the batch's next free slots: each distinct prompt
        once (n samples and identical prompts share it), after its longest cached prefix, in groups
        of similar length (a model call pads every prompt to its group's longest)."""
        dev, lo = self.device, len(batch)
        found: dict[tuple[int, ...], tuple] = {}  # prompt -> (cache entry, tokens reused); >= 1 token runs
        for r in rows:
            if (p := r.key) not in found:
                found[p] = self.prefix_cache.lookup(p, limit=len(p) - 1)
        prompts = sorted(found, key=lambda p: found[p][1] - len(p))  # the most tokens to run first
        slot = {p: lo + u for u, p in enumerate(prompts)}
        batch.reserve(max(map(len, prompts)), lo + len(rows))
        logits = []
        for group in prefill_groups([len(p) - found[p][1] for p in prompts]):
            part = [prompts[u] for u in group]
            new_w = len(part[0]) - found[part[0]][1]
            ids = torch.full((len(part), new_w), self.pad_id, dtype=torch.long)
            pos = torch.zeros((len(part), new_w), dtype=torch.long)
            cols = torch.full((len(part), new_w), batch.trash, dtype=torch.long)
            for u, p in enumerate(part):
                entry, n = found[p]
                if n:
                    batch.write_prefix(slot[p], entry.kv, n)
                fresh = len(p) - n  # right-aligned: every row's last token is the last position
                ids[u, new_w - fresh:] = torch.tensor(p[n:])
                pos[u, new_w - fresh:] = cols[u, new_w - fresh:] = torch.arange(n, len(p))
            width, pos = max(map(len, part)), pos.to(dev)
            batch.plan = Plan(slot[part[0]], slot[part[0]] + len(part), cols.to(dev), width)
            logits.append(self._forward(ids.to(dev), slot_mask(pos, width, self.model.dtype), pos, batch.cache,
                                        adapters=[space(p) for p in part]))
        for p in prompts:  # later prompts (and the next turn) may start with this one
            self.prefix_cache.insert(p, [(k[slot[p], :, :len(p)], v[slot[p], :, :len(p)]) for k, v in zip(batch.k, batch.v)])
        logits = torch.cat(logits)
        firsts, extra = {}, []
        for r in rows:  # the first row of each prompt has its slot; the others get a copy of it
            p = r.key
            if p not in firsts:
                firsts[p] = r
            else:
                batch.copy_slot(slot[p], lo + len(prompts) + len(extra), len(p))
                extra.append(r)
        if extra:
            logits = torch.cat([logits, logits[torch.tensor([slot[r.key] - lo for r in extra], device=dev)]])
        joined = [firsts[p] for p in prompts] + extra
        batch.extend(joined, [len(r.ids) for r in joined], logits)

    def _step(self, batch: RunningBatch) -> None:
        """Sample one token for every row, let the finished rows leave, run the rest one step."""
        if self.spec.wants(batch.rows):
            return self.spec.step(self, batch)
        if self._static is not None:
            tokens, logprobs = self._static.sample(batch.logits, batch.rows)
        else:
            picked = sample_next(batch.logits, [r.params for r in batch.rows], [r.gen for r in batch.rows])
            tokens = picked.tolist()
            logprobs = token_logprobs(batch.logits, picked, [r.params.logprobs for r in batch.rows])
        tokens = self._advance_all(batch, tokens, logprobs)
        if len(batch):
            self._decode(batch, tokens)

    def _advance_all(self, batch: RunningBatch, tokens: list[int], logprobs: list[float] | None) -> list[int]:
        """Give each row its token; the rows that finished leave the batch (their prompt + answer kept
        in the prefix cache as the next turn's prefix). The tokens of the rows that stay."""
        gone = []
        for b, r in enumerate(batch.rows):
            self._advance(r, tokens[b], None if logprobs is None else logprobs[b])
            if r.finish is not None:
                gone.append(b)
                if r.finish != "abort":
                    self.prefix_cache.insert(*batch.row_kv(b))
        return [tokens[b] for b in batch.remove(gone)] if gone else tokens

    def _decode(self, batch: RunningBatch, tokens: list[int]) -> None:
        """Run every row one step on its next token; the batch's logits become the following ones."""
        if self._static is not None:
            batch.logits = self._static.decode(tokens, batch.lens)
            batch.lens = [n + 1 for n in batch.lens]
            return
        dev, width = self.device, max(batch.lens) + 1
        batch.reserve(width, len(batch))
        pos = torch.tensor(batch.lens, device=dev).view(-1, 1)
        batch.plan = Plan(0, len(batch), pos, width)
        ids = torch.tensor(tokens, device=dev).view(-1, 1)
        batch.logits = self._forward(ids, slot_mask(pos, width, self.model.dtype), pos, batch.cache)
        batch.lens = [n + 1 for n in batch.lens]

    def _forward(self, ids, mask, pos, cache, every: bool = False, adapters=None):
        """One model call over the batch's slot `cache` (it writes the new tokens' KV as the batch's
        plan says); returns the last position's logits (`every`: all positions', [rows, tokens, vocab]).
        `adapters`: each row's LoRA adapter (None: the base; by default those of the rows the plan covers)."""
        model = self.model if self.lora is None else partial(self.lora.forward, adapters or plan_adapters(cache))
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                    **{self._cache_kw: cache}, **({} if every else self._forward_kw))
        return out.logits if every else out.logits[:, -1, :]

    def _advance(self, r: Row, token: int, logprob: float | None = None) -> None:
        """Append one token to a row; finish it on EOS, a stop string, its budget or cancellation."""
        if r.cancelled.is_set():
            return self._finish(r, "abort")
        r.generated += 1
        if token in self.eos_ids:
            return self._finish(r, "stop")
        r.out.append(token)
        if r.params.logprobs:
            r.logprobs.append(logprob)
            r.token_texts.append(self.tokenizer.decode([token]))
        if r.take_text(self.tokenizer.decode(r.out, skip_special_tokens=True)):
            return self._finish(r, "stop")
        if len(r.out) >= r.max_new:
            return self._finish(r, "length")
        self._emit(r, final=False)

    def _emit(self, r: Row, final: bool) -> None:
        if (text := r.delta(final)) and r.emit is not None:
            r.emit(text)

    def _finish(self, r: Row, reason: str) -> None:
        r.finish = reason
        self._emit(r, final=True)
        r.deliver(Completion(text=r.text, prompt_tokens=len(r.ids), completion_tokens=r.generated, finish_reason=reason,
                             token_logprobs=list(r.logprobs) if r.params.logprobs else None,
                             token_texts=list(r.token_texts) if r.params.logprobs else None))


def _adapter(lora) -> str | None:
    """The LoRA adapter this call runs under (app/engines/adapters.py), checked to be loaded."""
    from app.engines.adapters import current_adapter

    name = current_adapter()
    if name is not None and (lora is None or name not in lora.names):
        raise EngineError(f"the LoRA adapter {name!r} is not loaded in this engine")
    return name


def _skip_cancelled(r: Row) -> bool:
    if r.cancelled.is_set():
        r.finish = "abort"
        r.deliver(Completion("", len(r.ids), 0, "abort"))
        return True
    return False


def _run_calls(calls) -> None:
    for fn, args in calls:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a caller's callback must not starve the others
            log.exception("engine callback failed")


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
