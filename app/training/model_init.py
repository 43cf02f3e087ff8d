"""Fresh Llama models for the synthetic task. head_dim stays 32 or 64 (vLLM's CPU backend refuses 16).
transformers is imported only to build one: `SIZES` is read by the argument parser, which refuses bad
arguments before torch is imported (app/training/args.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

SIZES = {
    # name: (hidden, layers, heads, intermediate)
    "tiny": (64, 2, 2, 192),       # CI micro runs
    "small": (192, 4, 6, 512),     # ~1.9M parameters
    "base": (256, 6, 8, 704),      # ~4.9M parameters, the shipped model
    "large": (512, 6, 8, 1408),    # ~19.5M parameters (head_dim 64), issue 28's size sweep (scripts/gpu_sizes.sh)
}


def new_model(tokenizer: PreTrainedTokenizerFast, size: str = "base", max_context: int = 1024) -> LlamaForCausalLM:
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, heads, inter = SIZES[size]
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_context,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
