"""Conversations to training tensors: token ids plus a per-token loss weight.

Only assistant turns carry weight (their content and closing `<|end|>`); each assistant message
has its own weight, so RISE can weight turns by exp(r/τ) and the base recipe can mask wrong
attempts (weight 0) while keeping them in the context.
"""

from __future__ import annotations

from typing import Sequence

import torch

from app.training.tokenizer import role_prefix


def encode_example(tokenizer, messages: Sequence[dict], weights: Sequence[float]) -> tuple[list[int], list[float]]:
    """`weights[i]` applies to message i when it is an assistant message. An assistant message with a
    `weight_from` (a character offset into its content) weighs only from there on: its tokens that start
    before it weigh 0 (the base recipe's `check` shape trains a check, not the attempt it checks)."""
    ids: list[int] = []
    w: list[float] = []
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    for m, wt in zip(messages, weights):
        head = tokenizer.convert_tokens_to_ids(role_prefix(m["role"]))
        enc = tokenizer(m["content"], add_special_tokens=False, return_offsets_mapping="weight_from" in m)
        body = enc["input_ids"]
        weight = float(wt) if m["role"] == "assistant" else 0.0
        ids += [head] + body + [end]
        if "weight_from" in m:
            w += [0.0] + [weight if start >= m["weight_from"] else 0.0 for start, _ in enc["offset_mapping"]] + [weight]
        else:
            w += [0.0] + [weight] * (len(body) + 1)
    return ids, w


def collate(examples: Sequence[tuple], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; `weights[t]` is the weight of predicting token t+1 from the prefix to t.
    An example may carry a third list, its per-token `anchor` weights (see `anchored_loss`)."""
    width = max(len(ex[0]) for ex in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    weights = torch.zeros((len(examples), width), dtype=torch.float32)
    anchor = torch.zeros((len(examples), width), dtype=torch.float32)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for b, (x, w, *a) in enumerate(examples):
        ids[b, : len(x)] = torch.tensor(x)
        weights[b, : len(w)] = torch.tensor(w)
        if a:
            anchor[b, : len(a[0])] = torch.tensor(a[0])
        mask[b, : len(x)] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "weights": weights[:, 1:]}
    if any(len(ex) > 2 for ex in examples):
        batch["anchor"] = anchor[:, 1:]
    return batch


def weighted_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ w·CE / Σ w over next-token predictions (the exp(r/τ)-weighted SFT objective)."""
    num, den = weighted_sums(logits, batch)
    return num / den.clamp(min=1e-6)


def weighted_sums(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ w·CE and Σ w (a share of a batch adds its sums to the other shares')."""
    targets = batch["input_ids"][:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    w = batch["weights"]
    return (ce * w).sum(), w.sum()


def anchored_loss(logits: torch.Tensor, reference_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ a·KL(reference ‖ model) / Σ a over next-token predictions weighted by `batch["anchor"]`: keeps
    the model's distribution where it was (e.g. turn 1 while RISE teaches later turns), with the whole
    next-token distribution as the target rather than one sampled token."""
    num, den = anchored_sums(logits, reference_logits, batch)
    return num / den.clamp(min=1e-6)


def anchored_sums(logits: torch.Tensor, reference_logits: torch.Tensor,
                  batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ a·KL(reference ‖ model) and Σ a."""
    a = batch["anchor"]
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    ref = torch.log_softmax(reference_logits[:, :-1].float(), dim=-1)
    kl = (ref.exp() * (ref - logp)).sum(-1)
    return (kl * a).sum(), a.sum()
