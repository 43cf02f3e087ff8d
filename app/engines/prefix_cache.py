"""A token-keyed prefix cache of KV states for the embedded engine.

Turn k of a refinement starts with what turn k-1 saw: the question always, and with the `full`
window (or at turn 2 of the `last` window) the previous attempt too. The engine stores each
prompt's KV when it is prefilled, and each finished sequence's KV (prompt + answer) when it ends,
under their token ids; a new prompt then prefills only the tokens past its longest cached prefix.

Entries are found through hashes of 16-token blocks chained from the start (as vLLM keys its
prefix-cache blocks), so a lookup is one pass over the prompt, and the match is then checked token by
token. A `Prompt` (token ids run under a LoRA adapter) has its own space: its entries serve only
prompts of the same adapter (the same tokens give other keys and values there). Memory is bounded in bytes; the least recently used entries go first, and an entry that a
newer one extends is dropped (the newer one serves both).

    pytest tests/engines/test_prefix_cache.py
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import torch

BLOCK = 16
KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values as [heads, tokens, head_dim]


class Prompt(tuple):
    """Token ids run under a LoRA adapter (`adapter`): equal only to the same ids under the same
    adapter. A plain tuple is the base model's."""

    adapter: str

    def __new__(cls, ids, adapter: str) -> "Prompt":
        self = super().__new__(cls, ids)
        self.adapter = adapter
        return self

    def __eq__(self, other) -> bool:
        return isinstance(other, tuple) and tuple.__eq__(self, other) and space(other) == self.adapter

    def __ne__(self, other) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self.adapter, tuple(self)))


def space(tokens) -> str | None:
    """The adapter a token sequence runs under (None: the base model)."""
    return getattr(tokens, "adapter", None)


def keyed(tokens, adapter: str | None) -> tuple:
    return tuple(tokens) if adapter is None else Prompt(tokens, adapter)


@dataclass(eq=False)
class Entry:
    tokens: tuple[int, ...]
    kv: KV
    nbytes: int


@dataclass
class CacheStats:
    lookups: int = 0
    hits: int = 0
    prompt_tokens: int = 0
    hit_tokens: int = 0  # prompt tokens served from the cache
    evictions: int = 0


class PrefixCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.stats = CacheStats()
        self._lru: OrderedDict[int, Entry] = OrderedDict()  # id(entry) -> entry, oldest first
        self._blocks: dict[int, dict[int, Entry]] = {}  # chained block hash -> entries holding that prefix

    def __len__(self) -> int:
        return len(self._lru)

    def lookup(self, tokens: Sequence[int], *, count: bool = True, limit: int | None = None) -> tuple[Entry | None, int]:
        """The entry sharing the longest prefix with `tokens` (whole blocks, then token by token),
        and the length of that prefix, at most `limit` (a prompt must run at least its last token);
        (None, 0) when not even one block matches."""
        best, n = None, 0
        for i, h in enumerate(_chain(tokens)):
            holders = self._blocks.get(h)
            if not holders:
                break
            best, n = next(reversed(holders.values())), (i + 1) * BLOCK
        if best is not None and (tuple(tokens[:n]) != tuple(best.tokens[:n]) or space(best.tokens) != space(tokens)):
            # a hash collision: no reuse
            best, n = None, 0
        if best is not None:
            end = min(len(tokens), len(best.tokens))
            while n < end and best.tokens[n] == tokens[n]:
                n += 1
            self._lru.move_to_end(id(best))
            if limit is not None:
                n = min(n, limit)
        if count:
            self.stats.lookups += 1
            self.stats.prompt_tokens += len(tokens)
            self.stats.hits += best is not None
            self.stats.hit_tokens += n
        return best, n

    def insert(self, tokens: Sequence[int], kv: KV) -> None:
        """Keep `kv` (covering exactly `tokens`) for later prompts that start with `tokens`."""
        tokens = keyed(tokens, space(tokens))
        if len(tokens) < BLOCK or self.max_bytes <= 0:
            return
        old, n = self.lookup(tokens, count=False)
        if old is not None and n == len(tokens):
            return  # already covered by an entry at least this long
        nbytes = sum(2 * k[:, : len(tokens)].numel() * k.element_size() for k, _ in kv)
        if nbytes > self.max_bytes:
            return  # too big to keep: the shorter entry it extends stays
        if old is not None and n == len(old.tokens):
            self._remove(old)  # the new entry extends it
        keep = dict(memory_format=torch.contiguous_format)  # a copy: `kv` may view buffers that get reused
        kv = [(k[:, : len(tokens)].clone(**keep), v[:, : len(tokens)].clone(**keep)) for k, v in kv]
        entry = Entry(tokens, kv, nbytes)
        self._lru[id(entry)] = entry
        for h in _chain(tokens):
            self._blocks.setdefault(h, {})[id(entry)] = entry
        self.bytes += nbytes
        while self.bytes > self.max_bytes:
            self._remove(next(iter(self._lru.values())))
            self.stats.evictions += 1

    def clear(self) -> None:
        self._lru.clear()
        self._blocks.clear()
        self.bytes = 0

    def _remove(self, entry: Entry) -> None:
        if self._lru.pop(id(entry), None) is None:
            return
        for h in _chain(entry.tokens):
            holders = self._blocks.get(h)
            if holders is not None:
                holders.pop(id(entry), None)
                if not holders:
                    del self._blocks[h]
        self.bytes -= entry.nbytes


def _chain(tokens: Sequence[int]) -> list[int]:
    """One hash per whole block, each covering every token before it (and the adapter's space)."""
    hashes, h = [], hash(space(tokens))
    for start in range(0, len(tokens) - BLOCK + 1, BLOCK):
        h = hash((h, tuple(tokens[start : start + BLOCK])))
        hashes.append(h)
    return hashes
