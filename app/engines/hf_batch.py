"""The running batch of the embedded engine: the sequences decoding together and their KV.

Sequences join between decode steps (their prompts prefilled as a group, reusing cached prefixes)
and leave as soon as they finish, so nobody waits for the slowest sequence of a fixed batch.
Per layer the keys and values are [rows, heads, width, head_dim]; `mask` [rows, width] marks which
columns hold a row's tokens (rows are right-aligned; shorter rows have padding on the left, and a
row prefilled after a cached prefix may have a gap between the two). Attention follows the mask and
RoPE follows explicit position ids, so neither padding nor gaps change what a row computes.

The KV lives in buffers with room on the right: a decode step writes its column in place instead
of copying the whole cache (transformers' DynamicCache concatenates, a full copy per step). A
finished row stays in the batch, masked out, until the next join rebuilds the buffers without it
(or too many rows are finished): one copy per join instead of one per step and per leave.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import DynamicCache

from app.engines.base import SamplingParams
from app.engines.prefix_cache import KV

try:  # transformers >= 4.56 builds caches from layers
    from transformers.cache_utils import DynamicLayer
except ImportError:  # pragma: no cover - older transformers: rebuild a DynamicCache per step
    DynamicLayer = None

ROOM = 64  # spare columns per buffer; it doubles when full


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
    sent: int = 0
    finish: str | None = None


if DynamicLayer is not None:

    class BufferLayer(DynamicLayer):
        """A DynamicLayer whose keys and values are views into buffers with spare columns."""

        def __init__(self, k: torch.Tensor, v: torch.Tensor, used: int) -> None:
            super().__init__()
            self.dtype, self.device, self.is_initialized = k.dtype, k.device, True
            self._k, self._v = k, v
            self.keys, self.values = k[:, :, :used], v[:, :, :used]

        def update(self, key_states, value_states, *args, **kwargs):
            n, new = self.keys.shape[-2], key_states.shape[-2]
            if n + new > self._k.shape[-2]:
                self._k, self._v = _grow(self._k, n, n + new), _grow(self._v, n, n + new)
            self._k[:, :, n:n + new] = key_states
            self._v[:, :, n:n + new] = value_states
            self.keys, self.values = self._k[:, :, :n + new], self._v[:, :, :n + new]
            return self.keys, self.values


def _grow(buf: torch.Tensor, used: int, need: int) -> torch.Tensor:
    bigger = buf.new_zeros((*buf.shape[:2], max(need + ROOM, 2 * buf.shape[2]), buf.shape[3]))
    bigger[:, :, :used] = buf[:, :, :used]
    return bigger


def build_cache(parts: list[KV], widths: list[int], width: int) -> DynamicCache:
    """One cache holding the row blocks `parts` (each per layer [rows, heads, w, dim], its used
    columns the last `w`), right-aligned in `width` columns plus room to grow."""
    if DynamicLayer is None:  # pragma: no cover
        return DynamicCache([(torch.cat([_left_pad(p[i][0], width) for p in parts]),
                              torch.cat([_left_pad(p[i][1], width) for p in parts])) for i in range(len(parts[0]))])
    layers = []
    rows = sum(p[0][0].shape[0] for p in parts)
    for i in range(len(parts[0])):
        k0 = parts[0][i][0]
        # uninitialised memory: zero what attention may read unwritten (left padding); the spare
        # columns on the right are written before they are read
        k = k0.new_empty((rows, k0.shape[1], width + ROOM, k0.shape[3]))
        v = torch.empty_like(k)
        at = 0
        for p, w in zip(parts, widths):
            pk, pv = p[i]
            n = pk.shape[0]
            k[at:at + n, :, width - w:width] = pk[:, :, pk.shape[2] - w:]
            v[at:at + n, :, width - w:width] = pv[:, :, pv.shape[2] - w:]
            if w < width:
                k[at:at + n, :, :width - w] = 0
                v[at:at + n, :, :width - w] = 0
            at += n
        layers.append(BufferLayer(k, v, width))
    cache = DynamicCache()
    cache.layers = layers
    return cache


class RunningBatch:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rows: list[Row] = []  # finished rows stay (masked out) until the next rebuild
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [rows, width], 1 where a column holds a token
        self.pos: torch.Tensor | None = None  # [rows], the position id of each row's next token
        self.logits: torch.Tensor | None = None  # [rows, vocab], each row's next-token logits

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def live(self) -> int:
        return sum(r.finish is None for r in self.rows)

    @property
    def kv(self) -> KV:
        return [(layer[0], layer[1]) for layer in self.cache] if self.cache is not None else []

    def add(self, rows: list[Row], kv: KV, mask: torch.Tensor, pos: torch.Tensor, logits: torch.Tensor) -> None:
        """Rebuild the batch as its unfinished rows plus freshly prefilled ones (one copy)."""
        self._rebuild((list(rows), kv, mask.shape[1], mask, pos, logits))

    def compact(self) -> list[int]:
        """Drop finished rows now (when too many of them ride along); returns the kept rows' old indices."""
        return self._rebuild(None)

    def _rebuild(self, new: tuple | None) -> list[int]:
        """The unfinished rows (trimmed to the columns they use), then `new` (rows, kv, width, mask,
        pos, logits), in fresh buffers; returns the old indices of the rows kept."""
        keep = [b for b, r in enumerate(self.rows) if r.finish is None]
        blocks = []
        if keep:
            idx = torch.tensor(keep, device=self.mask.device)
            m = self.mask.index_select(0, idx)
            w = _used_width(m)
            blocks.append(([self.rows[b] for b in keep], [(k.index_select(0, idx), v.index_select(0, idx)) for k, v in self.kv],
                           w, m[:, m.shape[1] - w:], self.pos.index_select(0, idx), self.logits.index_select(0, idx)))
        if new is not None:
            blocks.append(new)
        if not blocks:
            self.reset()
            return keep
        rows, kvs, widths, masks, poss, logitss = zip(*blocks)
        width = max(widths)
        self.cache = build_cache(list(kvs), list(widths), width)
        self.mask = torch.cat([_left_pad(m, width) for m in masks])
        self.pos, self.logits = torch.cat(poss), torch.cat(logitss)
        self.rows = [r for block in rows for r in block]
        return keep

    def row_kv(self, b: int) -> tuple[list[int], KV]:
        """Row b's tokens in the cache and their KV, gaps removed: [heads, tokens, head_dim] per layer."""
        cols = self.mask[b].bool()
        r = self.rows[b]
        n = int(cols.sum())
        tokens = (r.ids + r.out)[:n]
        return tokens, [(k[b][:, cols], v[b][:, cols]) for k, v in self.kv]


def _used_width(mask: torch.Tensor) -> int:
    """Columns from the first one any row uses to the end."""
    used = mask.any(dim=0).nonzero()
    return mask.shape[1] - int(used[0]) if len(used) else 0


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Pad dim -1 (a mask) or dim -2 (keys/values) on the left to `width` with zeros."""
    dim = -1 if t.dim() == 2 else -2
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
