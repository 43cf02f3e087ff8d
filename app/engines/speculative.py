"""Prompt-lookup (n-gram) speculative decoding for the embedded engine.

A refinement's later turns mostly repeat the previous attempt, and with RISE's window that attempt
is in the prompt: the next tokens can be drafted from the sequence's own context for free. A row
drafts up to `k` tokens by finding its last n tokens (n from `ngram_max` down to `ngram_min`) at
their most recent earlier place in its context (prompt and output so far) and copying what followed.

One step, for every row of the running batch:
1. its next token is chosen from the batch's logits as the plain step chooses it (`sample_next`),
   except after a rejected draft x, when it is drawn from p with x removed and renormalised;
2. it drafts; one forward pass runs each row's token and drafts (rows padded to the longest draft;
   padding writes to the trash column) and gives the model's distribution at every position;
3. each draft is checked in order. Greedy: accepted when it is the argmax. Sampling: accepted with
   probability p(x), p being the distribution the engine samples from (temperature, then top_p's
   nucleus, renormalised); the row draws that uniform number from its own generator, so a seed
   gives the same output on every run. The first rejection ends the row's step: the next step
   draws from the residual (1). P(next = y) = p(x)[y = x] + (1 - p(x)) p(y) / (1 - p(x)) = p(y).
The next logits are those after the last accepted token, whose KV is then in the slot; columns past
it hold stale KV that later writes overwrite and the mask hides. Accepted tokens go through the
engine's `_advance` one by one, so EOS, stop strings, budgets, cancellation, log-probs (of the
model at temperature 1, at the token's own position) and streaming behave as without speculation.
A step where no row has a draft runs the plain one-token step (static shapes / CUDA graphs where
on); verify steps always run eagerly, on the same KV buffers.

    pytest tests/engines/test_speculative.py
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from app.engines.base import GREEDY_BELOW
from app.engines.hf_batch import Plan, Row, RunningBatch, slot_mask
from app.engines.sampling import sample_next, token_logprobs

if TYPE_CHECKING:
    from app.engines.hf import HFEngine


@dataclass(frozen=True)
class SpecConfig:
    """`enabled`: rows speculate unless their request says otherwise (`SamplingParams.speculative`);
    `tokens`: the most tokens a row drafts per step (k); n-grams of `ngram_max` down to `ngram_min`
    tokens are looked up; `max_batch`: a step with more rows than this drafts nothing (0: no limit),
    since a wide batch already fills the step that verifying drafts would."""

    enabled: bool = False
    tokens: int = 8
    ngram_min: int = 2
    ngram_max: int = 4
    max_batch: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.tokens <= 64:
            raise ValueError("speculative tokens must be between 1 and 64")
        if not 1 <= self.ngram_min <= self.ngram_max <= 32:
            raise ValueError("speculative n-gram sizes need 1 <= ngram_min <= ngram_max <= 32")
        if self.max_batch < 0:
            raise ValueError("speculative max_batch must be 0 (no limit) or more")


class Drafter:
    """One sequence's n-gram index: for each n-gram of its context, where its latest occurrence ends."""

    def __init__(self, config: SpecConfig, prompt: list[int]) -> None:
        self.sizes = list(range(config.ngram_max, config.ngram_min - 1, -1))  # the longest match first
        self.tables: dict[int, dict[tuple[int, ...], int]] = {n: {} for n in self.sizes}
        self.ctx = list(prompt)
        self.prompt_len = len(prompt)
        self.indexed = 0  # n-grams ending before this index are in the tables
        self.exclude: int | None = None  # the draft the last step rejected: the next token is drawn without it

    def propose(self, out: list[int], k: int) -> list[int]:
        """Up to `k` tokens to follow the context (the prompt, then `out`, the tokens generated so far)."""
        ctx = self.ctx
        ctx.extend(out[len(ctx) - self.prompt_len:])
        last = len(ctx) - 1
        for end in range(self.indexed, last):  # every n-gram ending before the last token
            for n in self.sizes:
                if end + 1 >= n:
                    self.tables[n][tuple(ctx[end + 1 - n:end + 1])] = end
        self.indexed = max(self.indexed, last)
        if k <= 0:
            return []
        for n in self.sizes:
            if len(ctx) > n and (end := self.tables[n].get(tuple(ctx[-n:]))) is not None:
                return ctx[end + 1:end + 1 + k]
        return []


@dataclass
class TurnStats:
    drafted: int = 0  # draft tokens run in a verify pass
    accepted: int = 0  # of those, accepted
    verified: int = 0  # rows verified (a row's drafts checked in one forward pass)


@dataclass
class SpecStats:
    """Counts by refinement turn (0: a call outside a refinement), read by the metrics collector."""

    by_turn: dict[int, TurnStats] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, turn: int, drafted: int, accepted: int) -> None:
        with self.lock:
            s = self.by_turn.setdefault(turn, TurnStats())
            s.drafted += drafted
            s.accepted += accepted
            s.verified += 1

    def snapshot(self) -> dict[int, TurnStats]:
        with self.lock:
            return {t: TurnStats(s.drafted, s.accepted, s.verified) for t, s in self.by_turn.items()}


class Speculator:
    """The engine's speculative step (see the module docstring)."""

    def __init__(self, config: SpecConfig) -> None:
        self.config = config
        self.stats = SpecStats()
        self.accept = accept_sampled  # the acceptance rule of sampled rows (a test swaps in a wrong one)

    def on(self, r: Row) -> bool:
        wanted = getattr(r.params, "speculative", None)
        return self.config.enabled if wanted is None else wanted

    def wants(self, rows: list[Row]) -> bool:
        """Whether this step is the speculative one: a row speculates and the batch is not crowded,
        or a row's last draft was rejected (its next token is the residual draw, whatever the batch)."""
        if not any(self.on(r) for r in rows):
            return False
        return not self.crowded(rows) or any(r.spec is not None and r.spec.exclude is not None for r in rows)

    def crowded(self, rows: list[Row]) -> bool:
        return bool(self.config.max_batch) and len(rows) > self.config.max_batch

    def step(self, eng: "HFEngine", batch: RunningBatch) -> None:
        tokens = eng._advance_all(batch, *self._first(batch))
        if not len(batch):
            return
        if self.crowded(batch.rows):  # the residual draws are done; no new drafts in a wide batch
            return eng._decode(batch, tokens)
        drafts = [self._draft(r) for r in batch.rows]
        if not any(drafts):
            return eng._decode(batch, tokens)
        self._verify(eng, batch, tokens, drafts)

    # -- the step's parts -------------------------------------------------------------------------

    def _first(self, batch: RunningBatch) -> tuple[list[int], list[float] | None]:
        """Each row's next token from the batch's logits: `sample_next`'s choice (the plain step's,
        draw for draw), or the residual draw for a row whose last draft was rejected."""
        rows, logits = batch.rows, batch.logits
        residual = [b for b, r in enumerate(rows) if r.spec is not None and r.spec.exclude is not None]
        plain = sorted(set(range(len(rows))) - set(residual))
        picked = torch.zeros(len(rows), dtype=torch.long)
        if plain:
            idx = torch.tensor(plain, device=logits.device)
            picked[plain] = sample_next(logits[idx], [rows[b].params for b in plain], [rows[b].gen for b in plain])
        for b in residual:
            picked[b] = sample_without(logits[b], rows[b].params, rows[b].gen, rows[b].spec.exclude)
            rows[b].spec.exclude = None
        logprobs = token_logprobs(logits, picked, [r.params.logprobs for r in rows])
        return picked.tolist(), logprobs

    def _draft(self, r: Row) -> list[int]:
        if not self.on(r):
            return []
        if r.spec is None:
            r.spec = Drafter(self.config, r.ids)
        return r.spec.propose(r.out, min(self.config.tokens, r.max_new - len(r.out)))

    def _verify(self, eng: "HFEngine", batch: RunningBatch, tokens: list[int], drafts: list[list[int]]) -> None:
        """One forward pass over every row's token and drafts, then each row's drafts checked in order."""
        dev, n, q = eng.device, len(batch), 1 + max(map(len, drafts))
        width = max(lens + 1 + len(d) for lens, d in zip(batch.lens, drafts))
        batch.reserve(width, n)
        ids = torch.full((n, q), eng.pad_id, dtype=torch.long)
        pos = torch.zeros((n, q), dtype=torch.long)
        cols = torch.full((n, q), batch.trash, dtype=torch.long)
        for b, d in enumerate(drafts):
            m = 1 + len(d)
            ids[b, :m] = torch.tensor([tokens[b], *d])
            pos[b, :m] = cols[b, :m] = torch.arange(batch.lens[b], batch.lens[b] + m)
        pos = pos.to(dev)
        batch.plan = Plan(0, n, cols.to(dev), width)
        logits = eng._forward(ids.to(dev), slot_mask(pos, width, eng.model.dtype), pos, batch.cache, every=True)
        logits = logits.float()  # [rows, q, vocab]
        top = logits.argmax(-1).tolist()
        logp = torch.log_softmax(logits, -1) if any(r.params.logprobs for r in batch.rows) else None
        at, gone = [], []
        for b, (r, d) in enumerate(zip(batch.rows, drafts)):
            a = 0
            if d:
                sampled = r.params.temperature >= GREEDY_BELOW
                p = draft_probs(logits[b, :len(d)], r.params, d) if sampled else None
                for j, x in enumerate(d):
                    ok = self.accept(p[j], r.gen) if sampled else top[b][j] == x
                    if not ok:
                        r.spec.exclude = x
                        break
                    eng._advance(r, x, None if logp is None else float(logp[b, j, x]))
                    a += 1
                    if r.finish is not None:
                        break
                self.stats.add(r.turn, len(d), a)
            at.append(a)
            batch.lens[b] += 1 + a
            if r.finish is not None:
                gone.append(b)
                if r.finish != "abort":
                    eng.prefix_cache.insert(*batch.row_kv(b))
        batch.logits = logits[torch.arange(n, device=logits.device), torch.tensor(at, device=logits.device)]
        if gone:
            batch.remove(gone)


def nucleus(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution `sample_next` draws from, in vocabulary order ([..., vocab], summing to 1):
    softmax(logits / temperature), cut to the nucleus `top_p` as `sample_next` cuts it, renormalised."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    sorted_p = torch.where(cum - sorted_p < top_p, sorted_p, torch.zeros_like(sorted_p))
    out = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return out / out.sum(dim=-1, keepdim=True)


def draft_probs(logits: torch.Tensor, params, drafts: list[int]) -> list[float]:
    """p(x) of each draft x at its position (`logits` [drafts, vocab])."""
    p = nucleus(logits, params.temperature, params.top_p)
    return p.gather(-1, torch.tensor(drafts, device=p.device).view(-1, 1)).view(-1).tolist()


def accept_sampled(p: float, gen: torch.Generator) -> bool:
    """Speculative sampling's rule for a deterministic draft: accept with probability p(x)."""
    return float(torch.rand((), generator=gen)) < p


def sample_without(logits: torch.Tensor, params, gen: torch.Generator, exclude: int) -> int:
    """A token from p with `exclude` removed and renormalised (greedy: the argmax without it), drawing
    one uniform number from the row's generator."""
    logits = logits.float()
    if params.temperature < GREEDY_BELOW:
        logits = logits.clone()
        logits[exclude] = float("-inf")
        return int(logits.argmax())
    p = nucleus(logits, params.temperature, params.top_p)
    p[exclude] = 0.0
    sorted_p, order = p.sort(descending=True)  # the likeliest first: u = 0 never lands on a zero
    cum = sorted_p.cumsum(-1)
    u = torch.rand((), generator=gen).to(cum.device) * cum[-1]
    pick = torch.searchsorted(cum, u.view(1)).clamp(max=cum.shape[-1] - 1)
    return int(order[pick])
