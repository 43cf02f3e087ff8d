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
    """`weights[i]` applies to message i when it is an assistant message."""
    ids: list[int] = []
    w: list[float] = []
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    for m, wt in zip(messages, weights):
        head = tokenizer.convert_tokens_to_ids(role_prefix(m["role"]))
        body = tokenizer(m["content"], add_special_tokens=False)["input_ids"]
        weight = float(wt) if m["role"] == "assistant" else 0.0
        ids += [head] + body + [end]
        w += [0.0] + [weight] * (len(body) + 1)
    return ids, w


def collate(examples: Sequence[tuple[list[int], list[float]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; `weights[t]` is the weight of predicting token t+1 from the prefix to t."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    weights = torch.zeros((len(examples), width), dtype=torch.float32)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for b, (x, w) in enumerate(examples):
        ids[b, : len(x)] = torch.tensor(x)
        weights[b, : len(w)] = torch.tensor(w)
        mask[b, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "weights": weights[:, 1:]}


def weighted_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Σ w·CE / Σ w over next-token predictions (the exp(r/τ)-weighted SFT objective)."""
    targets = batch["input_ids"][:, 1:]
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    ).view_as(targets)
    w = batch["weights"]
    return (ce * w).sum() / w.sum().clamp(min=1e-6)
