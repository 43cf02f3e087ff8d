"""Token log-probabilities from the embedded engine, against ones computed by hand with
transformers on the real shipped model; the confidence they make; and a batch of sampled rows."""

import math

import pytest
import torch

from app.engines.base import SamplingParams
from app.refine import policy

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"


def _by_hand(model_path, ids: list[int], steps: int):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path).eval()
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=steps, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=0)
    new = out.sequences[0, len(ids):].tolist()
    return new, [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, new)]


async def test_greedy_logprobs_match_transformers(engine, model_path):
    conv = [{"role": "user", "content": Q}]
    [[c]] = await engine.generate([conv], SamplingParams(max_tokens=60, logprobs=True))
    assert c.token_logprobs is not None and len(c.token_logprobs) >= 5
    tokens, expected = _by_hand(model_path, engine.encode(conv), len(c.token_logprobs))
    assert engine.tokenizer.decode(tokens, skip_special_tokens=True).startswith(c.text[:20])
    assert c.token_logprobs == pytest.approx(expected[:len(c.token_logprobs)], abs=2e-3)
    conf = policy.confidence(c.token_logprobs, "mean")
    assert conf == pytest.approx(math.exp(sum(expected[:len(c.token_logprobs)]) / len(c.token_logprobs)), rel=1e-2)


async def test_logprobs_only_when_asked_and_for_every_sampled_row(engine):
    conv = [{"role": "user", "content": Q}]
    [[plain]] = await engine.generate([conv], SamplingParams(max_tokens=40))
    assert plain.token_logprobs is None
    [rows] = await engine.generate([conv], SamplingParams(max_tokens=40, n=4, temperature=1.0, seed=3, logprobs=True))
    for c in rows:
        assert c.token_logprobs is not None and all(v <= 0 for v in c.token_logprobs)
        assert len(c.token_logprobs) in (c.completion_tokens, c.completion_tokens - 1)  # EOS not counted
