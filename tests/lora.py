"""Real PEFT LoRA adapters on the shipped model for the adapter tests: seeded random weights (a fresh
adapter's B is zero, so it would change nothing), saved as PEFT saves them, and their merged weights
(PEFT's merge_and_unload) as a plain model directory to compare against.

    python -c "from tests.lora import make_adapter; make_adapter('models/rise-synth', '/tmp/a', seed=1)"
"""

from __future__ import annotations

from pathlib import Path


def make_adapter(base: Path | str, out: Path | str, seed: int, r: int = 4, merged: Path | str | None = None,
                 scale: float = 1.0) -> Path:
    """A LoRA adapter of rank r on every linear layer of `base` in `out` (with the tokenizer); with
    `merged`, the base with the adapter merged in, written in float32 there."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear",
                                            init_lora_weights=False))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.mul_(scale)
    peft.peft_config["default"].base_model_name_or_path = str(Path(base).resolve())
    peft.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.save_pretrained(out)
    if merged is not None:
        peft.merge_and_unload().save_pretrained(merged)
        tokenizer.save_pretrained(merged)
    return Path(out)
