"""The running batch of the embedded engine: the sequences decoding together and their KV in slots.

Every sequence owns one slot of per-layer buffers [slots, heads, columns, head_dim]; its tokens sit
left-aligned at columns 0..len-1, so a token's column is its position. The live sequences fill slots
0..n-1: a joining sequence is prefilled straight into the next free slot (after copying its cached
prefix there), and a finished one leaves by moving the last sequence into its slot (one sequence's
columns copied, never the batch). A decode step writes each row's new key and value at its own column
and attends over columns 0..max(len) with a mask that hides each row's columns past its length.

    pytest tests/engines/test_hf_batching.py
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from app.engines.base import SamplingParams
from app.engines.prefix_cache import KV, keyed
from app.engines.stops import cut_at_stop, hold_back

MIN_COLUMNS = 256  # the buffers' first width; they grow by GROW columns as sequences grow, up to the context
GROW = 128


@dataclass(eq=False)
class Row:
    """One sequence to generate: a prompt's sample."""

    ids: list[int]
    params: SamplingParams
    gen: torch.Generator
    deliver: Callable  # deliver(completion | exception), thread-safe
    emit: Callable | None  # emit(text_delta), thread-safe, or None
    max_new: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.monotonic)
    out: list[int] = field(default_factory=list)
    text: str = ""
    generated: int = 0  # tokens sampled, EOS included
    logprobs: list[float] = field(default_factory=list)  # of the tokens in `out`, when params.logprobs
    token_texts: list[str] = field(default_factory=list)  # and their text
    sent: int = 0  # characters of `text` streamed so far
    finish: str | None = None
    turn: int = 0  # the refinement turn it belongs to (0: none), for the speculation metrics
    spec: object | None = None  # its speculative decoding state (app/engines/speculative.py), once it drafts
    adapter: str | None = None  # the LoRA adapter it runs under (app/engines/adapters.py); None: the base

    @property
    def key(self) -> tuple:
        """Its prompt as the prefix cache and the prefill key it: the token ids, in its adapter's space."""
        return keyed(self.ids, self.adapter)

    def take_text(self, text: str) -> bool:
        """Take the decoded text so far, cut at its earliest stop string; True if one was found."""
        self.text, stopped = cut_at_stop(text, self.params.stop)
        return stopped

    def delta(self, final: bool) -> str:
        """The text to stream now: the rest at the end; before it, all but a trailing partial UTF-8
        character and the tail a stop string could still begin in (so a stream never runs past a cut)."""
        end = len(self.text)
        if not final:
            end -= self.text.endswith("\ufffd") + hold_back(self.params.stop)
        end = max(end, self.sent)
        out, self.sent = self.text[self.sent:end], end
        return out


@dataclass
class Plan:
    """What the next forward call touches: slots lo..hi-1 read up to `width` columns; the new
    tokens' keys and values go to column cols[r, t] of slot lo + r."""

    lo: int
    hi: int
    cols: torch.Tensor  # [hi - lo, new tokens]
    width: int

    def __post_init__(self) -> None:
        self.slots = torch.arange(self.lo, self.hi, device=self.cols.device).view(-1, 1)


class SlotLayer(DynamicLayer):
    """One layer's KV buffers, written and read as the batch's current `Plan` says."""

    def __init__(self, batch: "RunningBatch", i: int) -> None:
        super().__init__()
        self.batch, self.i = batch, i
        k = batch.k[i]
        self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
        self.keys = self.values = k[:0, :, :0]

    def update(self, key_states, value_states, *args, **kwargs):
        b, p = self.batch, self.batch.plan
        k, v = b.k[self.i], b.v[self.i]
        k[p.slots, :, p.cols] = key_states.transpose(1, 2)  # [rows, tokens, heads, dim] at (slot, column)
        v[p.slots, :, p.cols] = value_states.transpose(1, 2)
        self.keys, self.values = k[p.lo:p.hi, :, :p.width], v[p.lo:p.hi, :, :p.width]
        return self.keys, self.values


class RunningBatch:
    """Rows 0..n-1 are the live sequences; `lens[r]` tokens of row r are in its slot."""

    def __init__(self, slots: int, shapes: list[tuple[int, int]], dtype: torch.dtype, device: torch.device,
                 max_columns: int) -> None:
        self.slots, self.shapes, self.dtype, self.device = slots, shapes, dtype, device
        self.max_columns = max_columns + 1  # the last column takes the writes of padding tokens
        self.k: list[torch.Tensor] = []
        self.v: list[torch.Tensor] = []
        self.plan: Plan | None = None
        self.cache = DynamicCache()
        self.rows: list[Row] = []
        self.lens: list[int] = []
        self.logits: torch.Tensor | None = None  # [rows, vocab], each row's next-token logits

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def columns(self) -> int:
        return self.k[0].shape[2] if self.k else 0

    @property
    def trash(self) -> int:
        """A column no sequence uses: padding tokens write their keys and values there."""
        return self.columns - 1

    def reserve(self, width: int, rows: int) -> None:
        """Make room for `rows` slots of `width` columns each (plus the padding column). Slots double
        up to the batch limit, columns grow by GROW up to the context; grown buffers are kept."""
        have = self.k[0].shape[0] if self.k else 0
        if width + 1 <= self.columns and rows <= have:
            return
        cols = self.columns
        if width + 1 > cols:
            cols = min(self.max_columns, max(MIN_COLUMNS, -(-(width + 1 + GROW) // GROW) * GROW))
            if width + 1 > cols:
                raise ValueError(f"{width} columns exceed the context")
        slots = have if rows <= have else min(self.slots, max(rows, 2 * have, 4))
        grown_k, grown_v = [], []
        for i, (heads, dim) in enumerate(self.shapes):
            k = torch.zeros((slots, heads, cols, dim), dtype=self.dtype, device=self.device)
            v = torch.zeros_like(k)
            if self.k:
                used = self.columns - 1
                k[:have, :, :used], v[:have, :, :used] = self.k[i][:, :, :used], self.v[i][:, :, :used]
            grown_k.append(k)
            grown_v.append(v)
        self.k, self.v = grown_k, grown_v
        self.cache.layers = [SlotLayer(self, i) for i in range(len(self.shapes))]

    def write_prefix(self, slot: int, kv: KV, n: int) -> None:
        """Copy the first `n` tokens of a cached entry's KV into `slot`."""
        for i, (k, v) in enumerate(kv):
            self.k[i][slot, :, :n] = k[:, :n]
            self.v[i][slot, :, :n] = v[:, :n]

    def copy_slot(self, src: int, dst: int, n: int) -> None:
        for k, v in zip(self.k, self.v):
            k[dst, :, :n] = k[src, :, :n]
            v[dst, :, :n] = v[src, :, :n]

    def extend(self, rows: list[Row], lens: list[int], logits: torch.Tensor) -> None:
        """Rows whose KV is already in the next free slots join the batch."""
        self.rows += rows
        self.lens += lens
        self.logits = logits if self.logits is None or not len(self.logits) else torch.cat([self.logits, logits])

    def remove(self, gone: list[int]) -> list[int]:
        """Drop rows `gone`, moving the last rows into their slots; returns, for each row now,
        the index it had before (to reorder per-row tensors the same way)."""
        order = list(range(len(self.rows)))
        for r in sorted(gone, reverse=True):
            last = len(self.rows) - 1
            if r != last:
                self.copy_slot(last, r, self.lens[last])
                self.rows[r], self.lens[r], order[r] = self.rows[last], self.lens[last], order[last]
            self.rows.pop()
            self.lens.pop()
            order.pop()
        if self.logits is not None:
            self.logits = self.logits[torch.tensor(order, device=self.logits.device)] if order else None
        return order

    def row_kv(self, r: int) -> tuple[list[int], KV]:
        """Row r's tokens in its slot and their KV ([heads, tokens, head_dim] views per layer)."""
        n = self.lens[r]
        row = self.rows[r]
        return keyed((row.ids + row.out)[:n], row.adapter), [(k[r, :, :n], v[r, :, :n]) for k, v in zip(self.k, self.v)]


def plan_adapters(cache: DynamicCache) -> list[str | None]:
    """The LoRA adapters of the running rows a batch's current plan covers (a call over its rows)."""
    batch = cache.layers[0].batch
    return [r.adapter for r in batch.rows[batch.plan.lo:batch.plan.hi]]


def slot_mask(pos: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """A ready 4D additive attention mask [rows, 1, queries, width] for queries at positions `pos`
    [rows, queries]: a query at position p sees columns 0..p of its own slot (transformers builds none)."""
    allowed = torch.arange(width, device=pos.device).view(1, 1, -1) <= pos.unsqueeze(-1)
    return torch.zeros(allowed.shape, dtype=dtype, device=pos.device).masked_fill_(
        ~allowed, torch.finfo(dtype).min).unsqueeze(1)


def prefill_groups(fresh: list[int], waste: float = 0.25, free: int = 64) -> list[range]:
    """Split prompts (sorted by tokens to run, `fresh`, longest first) into consecutive groups, one
    model call each: a group's padding (to its longest prompt) stays within `waste` of its tokens, or
    within `free` tokens (cheaper than another call)."""
    groups, start = [], 0
    for u in range(1, len(fresh) + 1):
        if u < len(fresh):
            slots = (u + 1 - start) * fresh[start]
            pad = slots - sum(fresh[start:u + 1])
            if pad <= max(waste * slots, free):
                continue
        groups.append(range(start, u))
        start = u
    return groups
