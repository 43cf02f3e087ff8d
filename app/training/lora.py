"""LoRA for `rise train rise --lora-r R`: each iteration trains a PEFT LoRA adapter on the frozen
starting model instead of its full weights (iteration k continues iteration k-1's adapter) and
saves the adapter directory (adapter_config.json, adapter_model.safetensors, the tokenizer);
`--merge` writes the starting model with the last adapter merged in instead. Rollouts and
evaluation run the adapter on the serving engines (app/engines/adapters.py), as `rise serve --lora`.

    rise train rise --model models/base-synth --out runs/lora --lora-r 8 --iterations 1
    pytest tests/training/test_lora.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.cli_args import non_negative_float, positive_float, positive_int

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def add_args(ap: argparse.ArgumentParser) -> None:
    g = ap.add_argument_group("LoRA (PEFT): an adapter instead of full weights")
    g.add_argument("--lora-r", type=positive_int, default=None, metavar="R",
                   help="train a LoRA adapter of rank R on the frozen --model and write the adapter directory "
                        "(serve it with `rise serve --model MODEL --lora NAME=OUT`)")
    g.add_argument("--lora-alpha", type=positive_float, default=None, help="LoRA scaling alpha (default: 2R)")
    g.add_argument("--lora-dropout", type=non_negative_float, default=0.0, help="dropout on the LoRA input")
    g.add_argument("--lora-targets", nargs="+", default=["all-linear"], metavar="MODULE",
                   help="module names the adapter wraps, e.g. q_proj v_proj (default: every linear layer but the "
                        "output head)")
    g.add_argument("--merge", action="store_true",
                   help="write the model with the adapter merged in (full weights, float32) instead of the adapter")


def check(ap: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if a.lora_r is None:
        for flag, given in (("--lora-alpha", a.lora_alpha is not None), ("--lora-dropout", a.lora_dropout),
                            ("--lora-targets", a.lora_targets != ["all-linear"]), ("--merge", a.merge)):
            if given:
                ap.error(f"{flag} applies to LoRA training: give --lora-r R too")
        return
    if a.lora_dropout >= 1:
        ap.error("--lora-dropout must be below 1")
    if a.lora_alpha is None:
        a.lora_alpha = 2.0 * a.lora_r


def is_adapter(path: Path) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def trainable(base: Path, adapter: Path | None, a: argparse.Namespace):
    """The base model (float32) with a new LoRA adapter, or with `adapter` to train further; only the
    adapter's weights require gradients."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        return PeftModel.from_pretrained(model, adapter, is_trainable=True)
    targets = a.lora_targets[0] if a.lora_targets == ["all-linear"] else list(a.lora_targets)
    config = LoraConfig(r=a.lora_r, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout, target_modules=targets,
                        task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as e:  # target modules the model does not have
        raise LoraError(f"--lora-targets {' '.join(a.lora_targets)}: {e}") from None


def check_targets(base: Path, a: argparse.Namespace) -> None:
    """Refuse (LoraError) target modules the model does not have, before any work: the adapter is built
    on an empty copy of the model (no weights loaded)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base))
    targets = a.lora_targets[0] if a.lora_targets == ["all-linear"] else list(a.lora_targets)
    try:
        get_peft_model(model, LoraConfig(r=a.lora_r, target_modules=targets))
    except ValueError as e:
        raise LoraError(f"--lora-targets {' '.join(a.lora_targets)}: {e}") from None


class LoraError(ValueError):
    """The LoRA options do not fit the model."""


def save_adapter(model, tokenizer, out: Path, base: Path) -> None:
    """The adapter directory, naming its base model by absolute path (PEFT's base_model_name_or_path)."""
    out.mkdir(parents=True, exist_ok=True)
    for config in model.peft_config.values():
        config.base_model_name_or_path = str(Path(base).resolve())
    from app.training.base import like_the_rest

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    like_the_rest(out)


def merge(base: Path, adapter: Path, out: Path) -> None:
    """`base` with `adapter` merged in (PEFT's merge_and_unload), written in float32 to `out`: the same
    computation as the adapter on the base (a bf16 copy would round the adapter's small deltas away)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.training.base import like_the_rest

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), adapter)
    merged = model.merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(adapter).save_pretrained(out)
    like_the_rest(out)


def base_of(adapter: Path) -> str:
    return json.loads((Path(adapter) / "adapter_config.json").read_text())["base_model_name_or_path"]
