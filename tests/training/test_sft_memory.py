"""The fine-tuning loop's memory options (app/training/sft.py) take the same step: a batch split into
micro-batches (gradient accumulation) or trained with gradient checkpointing gives the loss and
weights of the plain step, the anchor's KL term included; and a wrong normalisation (each
micro-batch divided by its own weight) would not.

    .venv/bin/python -m pytest -q tests/training/test_sft_memory.py
"""

import copy
import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.tasks import synthetic
from app.training import sft
from app.training.base import base_conversation
from app.training.data import collate, encode_example
from app.training.sft import TrainConfig, micro_batches, train
from tests.conftest import BASE_MODEL


@pytest.fixture(scope="module")
def setup():
    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)
    model = AutoModelForCausalLM.from_pretrained(BASE_MODEL, dtype=torch.float32)
    rng = random.Random(3)
    examples = [encode_example(tokenizer, *base_conversation(rng, synthetic.generate(rng, synthetic.LEVELS["easy"], "train")))
                for _ in range(5)]
    examples[0] = (examples[0][0], [x * 12.0 for x in examples[0][1]])  # rows weigh differently
    batch = collate(examples, tokenizer.pad_token_id)
    batch["anchor"] = torch.zeros_like(batch["weights"])
    batch["anchor"][3:] = (batch["weights"][3:] > 0).float()  # the last rows are anchored
    return model, batch


def step(setup, **cfg) -> tuple[float, dict[str, float]]:
    model, batch = setup
    m, ref = copy.deepcopy(model), copy.deepcopy(model)
    with torch.no_grad():  # the reference differs from the model, so that the KL term is not zero
        for p in ref.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    summary = train(m, iter([batch]), TrainConfig(lr=1e-3, steps=1, warmup_steps=1, log_every=1, **cfg),
                    torch.device("cpu"), reference=ref, anchor=0.5)
    return summary["loss_curve"][0], {n: float(p.detach().double().sum()) for n, p in m.named_parameters()}


def same(a, b) -> None:
    assert b[0] == pytest.approx(a[0], abs=1e-4)
    for name, value in a[1].items():
        assert b[1][name] == pytest.approx(value, abs=2e-5), name


def test_micro_batches_cover_the_batch_in_order(setup):
    _, batch = setup
    parts = micro_batches(batch, 3)
    assert [len(p["input_ids"]) for p in parts] == [2, 2, 1]
    assert torch.equal(torch.cat([p["weights"] for p in parts]), batch["weights"])
    assert len(micro_batches(batch, 9)) == 5  # never an empty micro-batch


def test_accumulation_and_checkpointing_take_the_plain_step(setup, monkeypatch):
    monkeypatch.setattr(sft, "bf16_autocast", lambda device: False)  # fp32: the comparison is exact up to summation order
    plain = step(setup)
    same(plain, step(setup, grad_accum=3))
    same(plain, step(setup, grad_accum=5))
    same(plain, step(setup, grad_checkpointing=True))
    same(plain, step(setup, grad_accum=2, grad_checkpointing=True))


def test_a_per_micro_batch_normalisation_would_be_caught(setup, monkeypatch):
    monkeypatch.setattr(sft, "bf16_autocast", lambda device: False)
    plain = step(setup)
    real = sft.weighted_sums

    def own_weight(logits, part):  # each micro-batch divided by its own Σ w, as a naive accumulation would
        num, den = real(logits, part)
        return num / den.clamp(min=1e-6) * setup[1]["weights"].sum() / 3, den

    monkeypatch.setattr(sft, "weighted_sums", own_weight)
    with pytest.raises(AssertionError):
        same(plain, step(setup, grad_accum=3))
