"""Next-token choice for a batch whose rows each have their own temperature, top_p and seed.

Each row draws its uniform number from its own generator, so a seeded sample is the same
whichever other requests share its batch. A row whose temperature is below `GREEDY_BELOW` takes
the argmax: dividing float32 logits by a tiny temperature overflows them to infinities (and the
softmax of those is NaN, which samples garbage).
"""

from __future__ import annotations

from typing import Sequence

import torch

from app.engines.base import GREEDY_BELOW, SamplingParams


def sample_next(logits: torch.Tensor, params: Sequence[SamplingParams], gens: Sequence[torch.Generator]) -> torch.Tensor:
    """One token id per row of `logits` ([batch, vocab]), on the CPU."""
    logits = logits.float()
    choice = logits.argmax(dim=-1).cpu()
    sampled = [b for b, p in enumerate(params) if p.temperature >= GREEDY_BELOW]
    if not sampled:
        return choice
    idx = torch.tensor(sampled, device=logits.device)
    temps = torch.tensor([params[b].temperature for b in sampled], device=logits.device)
    top_p = torch.tensor([params[b].top_p for b in sampled], device=logits.device)
    probs = torch.softmax(logits[idx] / temps[:, None], dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    sorted_p = torch.where(cum - sorted_p < top_p[:, None], sorted_p, torch.zeros_like(sorted_p))  # nucleus
    cum = sorted_p.cumsum(dim=-1)
    u = torch.stack([torch.rand((), generator=gens[b]) for b in sampled]).to(logits.device) * cum[:, -1]
    pick = torch.searchsorted(cum, u[:, None]).clamp(max=cum.shape[-1] - 1)
    tokens = order.gather(-1, pick).squeeze(-1).cpu()
    choice[torch.tensor(sampled)] = tokens
    return choice


def row_generator(seed: int | None) -> torch.Generator:
    """A row's own random generator: seeded for a reproducible sample, else freshly seeded."""
    g = torch.Generator()
    if seed is None:
        g.seed()  # a fresh non-deterministic seed, for this generator only
    else:
        g.manual_seed(seed)
    return g


def token_logprobs(logits: torch.Tensor, picked: torch.Tensor, wanted: Sequence[bool]) -> list[float] | None:
    """Each row's log-probability of its picked token under the model's own distribution
    (temperature 1), or None when no row asked for it."""
    if not any(wanted):
        return None
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, picked.to(logits.device).view(-1, 1)).squeeze(-1).tolist()
