"""The running batch of the embedded engine: the sequences decoding together and their KV.

Sequences join between decode steps (their prompts prefilled as a group, reusing cached prefixes)
and leave as soon as they finish, so nobody waits for the slowest sequence of a fixed batch.
Per layer the keys and values are [rows, heads, width, head_dim]; `mask` [rows, width] marks which
columns hold a row's tokens (rows are right-aligned; shorter rows have padding on the left, and a
row prefilled after a cached prefix may have a gap between the two). Attention follows the mask and
RoPE follows explicit position ids, so neither padding nor gaps change what a row computes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import torch

from app.engines.base import SamplingParams
from app.engines.prefix_cache import KV


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
    out: list[int] = field(default_factory=list)
    text: str = ""
    generated: int = 0  # tokens sampled, EOS included
    sent: int = 0
    finish: str | None = None


class RunningBatch:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.kv: KV = []
        self.mask: torch.Tensor | None = None  # [rows, width], 1 where a column holds a token
        self.pos: torch.Tensor | None = None  # [rows], the position id of each row's next token
        self.logits: torch.Tensor | None = None  # [rows, vocab], each row's next-token logits
        self.cache = None  # the model's cache object holding `kv`, while the rows stay the same

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, rows: list[Row], kv: KV, mask: torch.Tensor, pos: torch.Tensor, logits: torch.Tensor) -> None:
        """Merge freshly prefilled rows in, padding whichever side is narrower on the left."""
        self.cache = None
        if not self.rows:
            self.rows, self.kv, self.mask, self.pos, self.logits = list(rows), kv, mask, pos, logits
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.kv = [(torch.cat([_left_pad(k0, width), _left_pad(k1, width)]),
                    torch.cat([_left_pad(v0, width), _left_pad(v1, width)]))
                   for (k0, v0), (k1, v1) in zip(self.kv, kv)]
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)])
        self.pos = torch.cat([self.pos, pos])
        self.logits = torch.cat([self.logits, logits])
        self.rows += rows

    def keep(self, keep: list[int]) -> None:
        """Keep only these rows, and drop the leading columns no remaining row uses."""
        if len(keep) == len(self.rows):
            return
        self.cache = None
        self.rows = [self.rows[b] for b in keep]
        if not keep:
            self.kv, self.mask, self.pos, self.logits = [], None, None, None
            return
        idx = torch.tensor(keep, device=self.mask.device)
        mask = self.mask.index_select(0, idx)
        used = mask.any(dim=0).nonzero()
        start = int(used[0]) if len(used) else mask.shape[1]
        self.mask = mask[:, start:]
        self.kv = [(k.index_select(0, idx)[:, :, start:], v.index_select(0, idx)[:, :, start:]) for k, v in self.kv]
        self.pos = self.pos.index_select(0, idx)
        self.logits = self.logits.index_select(0, idx)

    def row_kv(self, b: int) -> tuple[list[int], KV]:
        """Row b's tokens in the cache and their KV, gaps removed: [heads, tokens, head_dim] per layer."""
        cols = self.mask[b].bool()
        r = self.rows[b]
        n = int(cols.sum())
        tokens = (r.ids + r.out)[:n]
        return tokens, [(k[b][:, cols], v[b][:, cols]) for k, v in self.kv]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Pad dim -1 (a mask) or dim -2 (keys/values) on the left to `width` with zeros."""
    dim = -1 if t.dim() == 2 else -2
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)
