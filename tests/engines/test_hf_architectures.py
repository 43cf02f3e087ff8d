"""The embedded engine on other architectures than the shipped Llama: grouped-query attention with
biases (Qwen2), Mistral, and learned absolute positions (GPT-2). Small random models are built here
(no hub) with the shipped tokenizer; the engine's greedy text must equal transformers' `generate`."""

import asyncio

import pytest
import torch
from transformers import (
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from app.engines.base import SamplingParams
from app.engines.hf import HFEngine

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
             max_position_embeddings=512, pad_token_id=0, eos_token_id=1,
             initializer_range=0.3)  # random weights large enough that greedy text varies
QUESTIONS = ["What is 3 plus 4?", "Sam has 12 apples and eats 5. How many are left? Explain step by step.",
             "A box holds 6 rows of 7 eggs. How many eggs?"]


def build(kind: str, vocab: int):
    if kind == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, **SMALL))
    if kind == "mistral":
        return MistralForCausalLM(MistralConfig(vocab_size=vocab, sliding_window=None, **SMALL))
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=2, n_positions=512, initializer_range=0.3,
                                      pad_token_id=0, eos_token_id=1, bos_token_id=1))


@pytest.mark.parametrize("kind", ["qwen2", "mistral", "gpt2"])
def test_greedy_text_equals_transformers_generate(kind, model_path, tmp_path):
    tok = AutoTokenizer.from_pretrained(model_path)
    torch.manual_seed(0)
    model = build(kind, len(tok)).eval()
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    convs = [[{"role": "user", "content": q}] for q in QUESTIONS]
    expected = []
    for c in convs:
        ids = tok.apply_chat_template(c, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=30, do_sample=False, pad_token_id=0)
        expected.append(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))

    async def run():
        engine = HFEngine(tmp_path)
        try:  # all at once: they share batches, join and leave together
            results = await asyncio.gather(*[engine.generate([c], SamplingParams(temperature=0, max_tokens=30)) for c in convs])
        finally:
            await engine.aclose()
        return [r[0][0].text for r in results]

    texts = asyncio.run(run())
    assert texts == expected and all(texts)
