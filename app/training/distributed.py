"""Multi-process training with HF Accelerate: each process trains on its share of every batch, the
model replicated (DDP) or sharded over the processes (`--fsdp`: PyTorch's FSDP2, ZeRO-3's partitioning).
`rise train rise` under `accelerate launch` collects and evaluates on the main process and trains on
all (app/training/rise.py); this module also runs one checked step on its own.

    accelerate launch --multi_gpu --num_processes 2 -m app.cli train rise --model models/base-synth --out /tmp/d
    accelerate launch --multi_gpu --num_processes 2 -m app.training.distributed --out /tmp/ddp   # one step
    accelerate launch --multi_gpu --num_processes 2 -m app.training.distributed --out /tmp/fsdp --fsdp
    pytest tests/training/test_distributed.py

A batch stays the unit of the schedule: process p of n takes rows p, p+n, ... of each (global)
batch. The loss is the whole batch's Σ w·CE / Σ w: each process's share contributes its Σ w·CE
divided by the whole batch's Σ w (summed across processes), times n, because DDP averages the
gradients: so a step of n processes equals one process's step on the whole batch, up to float
summation order. A share with no rows (a batch smaller than n) runs one row with zero weight.
"""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from pathlib import Path

import torch


def accelerator():
    """The Accelerate state of this process: several under `accelerate launch` (or torchrun), else one.
    Without a GPU the processes train on the CPU over gloo (Accelerate's MULTI_CPU). Collectives may
    wait for a long collection on the main process (24 h before they time out)."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    return Accelerator(cpu=not torch.cuda.is_available(),
                       kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=24))])


def launched() -> bool:
    """Whether this process is one of several (`accelerate launch`, torchrun)."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def share(acc, objects: list) -> list:
    """The main process's `objects` (picklable), in every process."""
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list(list(objects), from_process=0)


class Shard:
    """This process's share of each batch, and the loss terms reduced over every process's share."""

    def __init__(self, acc) -> None:
        self.acc, self.n, self.rank = acc, acc.num_processes, acc.process_index

    def take(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        part = {k: v[self.rank::self.n] for k, v in batch.items()}
        if len(part["input_ids"]) == 0:  # nothing for this process: one row that weighs nothing
            part = {k: v[:1] if k in ("input_ids", "attention_mask") else torch.zeros_like(v[:1])
                    for k, v in batch.items()}
        return part

    def total(self, x: torch.Tensor) -> torch.Tensor:
        """`x` summed over every process's share (each micro-batch's sums are divided by such a total)."""
        return self.acc.reduce(x.detach().clone(), reduction="sum")


def shard_fully(model: torch.nn.Module) -> None:
    """FSDP (PyTorch's FSDP2, `fully_shard`; ZeRO-3's partitioning): each decoder layer (the classes
    HF's `_no_split_modules` names) and then the whole model hold 1/n of their parameters, gradients
    and optimizer state in each process, gathered for a layer's forward and backward. In place,
    before the optimizer is made (its parameters are the shards)."""
    from torch.distributed.fsdp import fully_shard

    blocks = set(getattr(model, "_no_split_modules", None) or [])
    for module in model.modules():
        if type(module).__name__ in blocks:
            fully_shard(module)
    fully_shard(model)


def gathered(model: torch.nn.Module, acc):
    """The fully sharded `model`'s whole weights as a plain model in the main process (None in the
    others). Every process must call it: the shards are gathered (to the CPU) collectively."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from transformers import AutoModelForCausalLM

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not acc.is_main_process:
        return None
    plain = AutoModelForCausalLM.from_config(model.config, dtype=next(iter(state.values())).dtype)  # the shards' own
    plain.load_state_dict(state)
    return plain.eval()


def one_step(model_dir: Path, out: Path, rows: int = 6, seed: int = 0, grad_accum: int = 1, fsdp: bool = False) -> dict:
    """One training step on a fixed batch of `rows` synthetic conversations (the same in every
    process): the logged loss, the gradient's norm and the updated weights' sums, written by the
    main process to OUT/step.json (what the test compares between 1 and n processes). In float64, on
    expert problems (where the model's loss is far from 0): so that float summation order, which
    differs between 1 and n processes and between CPUs, stays far below what a wrong normalisation
    would change (in float32 on easy rows the gradient was a 3e-4 norm, and its summation noise
    2.6e-4 of it on an AMX Xeon)."""
    import random

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.tasks import synthetic
    from app.training.base import base_conversation
    from app.training.data import collate, encode_example
    from app.training.sft import TrainConfig, train

    acc = accelerator()
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    rng = random.Random(seed)
    examples = [encode_example(tokenizer, *base_conversation(rng, synthetic.generate(rng, synthetic.LEVELS["expert"],
                                                                                     "train"))) for _ in range(rows)]
    for i in range(0, rows, 3):  # weights differ between rows, so that a wrong normalisation shows
        examples[i] = (examples[i][0], [x * 12.0 for x in examples[i][1]])
    batch = collate(examples, tokenizer.pad_token_id)
    cfg = TrainConfig(lr=1e-3, steps=1, warmup_steps=1, log_every=1, grad_accum=grad_accum, fsdp=fsdp)
    summary = train(model, iter([batch]), cfg, torch.device("cpu"), accelerator=acc)
    sharded = fsdp and acc.num_processes > 1
    model = acc.unwrap_model(model) if acc.num_processes > 1 and not sharded else model
    # (FSDP: each process holds a shard of every gradient; full_tensor() gathers it, in every process)
    grads = [p.grad.full_tensor() if sharded else p.grad for p in model.parameters() if p.grad is not None]
    whole = gathered(model, acc) if sharded else model
    result = {"processes": acc.num_processes, "loss": summary["loss_curve"][0], "tokens": summary["tokens"],
              "grad_norm": float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))),
              "weights": {n: float(p.detach().double().sum()) for n, p in whole.named_parameters()} if whole else {}}
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "step.json").write_text(json.dumps(result, indent=1) + "\n")
    acc.wait_for_everyone()
    return result


def main(argv: list[str] | None = None) -> int:
    from app.cli_args import model_dir, writable_dir
    from app.config import default_model

    ap = argparse.ArgumentParser(description="One DDP training step on a fixed batch (a check of multi-process training).")
    ap.add_argument("--model", type=model_dir, default=None, help="HF model directory (default: the shipped model)")
    ap.add_argument("--out", type=writable_dir, required=True)
    ap.add_argument("--rows", type=int, default=6)
    ap.add_argument("--grad-accum", type=int, default=1, help="micro-batches per process's share")
    ap.add_argument("--fsdp", action="store_true", help="shard the model over the processes (FSDP) instead of DDP")
    a = ap.parse_args(argv)
    one_step(a.model or default_model(), a.out, a.rows, grad_accum=a.grad_accum, fsdp=a.fsdp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
