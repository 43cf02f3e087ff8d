"""The base-model recipe: a tokenizer and a fresh Llama trained on synthetic problems, already in
the refinement format (attempt, feedback, new attempt), so that RISE starts from a model that
knows how a second turn looks.

    rise train base --out models/base-synth --minutes 5 --device cuda
    rise train base --init models/base-synth --dataset inverse --shapes single --out runs/inv-base --minutes 30
    python -m app.training.base --out /tmp/m --steps 20 --size tiny      # a micro run
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from app.refine.feedback import DEFAULT_FEEDBACK, render_feedback
from app.tasks import inverse, synthetic
from app.training.args import parse_base
from app.training.data import collate, encode_example
from app.training.model_init import new_model
from app.training.sft import TrainConfig, train
from app.training.tokenizer import build_tokenizer

# Conversation shapes and their shares (see `base_conversation`); the recipe's default mix is the first four.
SHAPES = {"single": 0.35, "fix": 0.35, "fix2": 0.10, "keep": 0.20, "check": 0.20}
DEFAULT_SHAPES = ("single", "fix", "fix2", "keep")


def base_conversation(rng: random.Random, problem: synthetic.Problem | inverse.Problem, feedback: str = DEFAULT_FEEDBACK,
                      shapes: list[str] | None = None) -> tuple[list[dict], list[float]]:
    """One training conversation and its per-message weights, its shape drawn from `shapes` (default:
    all four, in the shares of SHAPES); a wrong attempt is the problem family's `corrupt`.

    single: the question and the worked solution.
    fix:    a wrong attempt (weight 0), the feedback, the corrected solution.
    fix2:   two wrong attempts, then the correction (the `full` window's shape).
    keep:   a correct attempt, the feedback, the same solution again (no-oracle feedback must not
            talk the model out of a right answer it can check).
    check:  (inverse problems) a wrong attempt as the answer, trained from its "Check:" on only: the
            honest forward check of a wrong result ("89 vs 93: no match."), and the answer it checked.
            Every worked solution's check matches, so a model trained on those alone writes "It
            matches" whatever its numbers (scripts/inverse_checks.py); this shape teaches the verdict.
    """
    mix = {name: SHAPES[name] for name in (shapes or DEFAULT_SHAPES)}
    shape = rng.choices(list(mix), weights=list(mix.values()))[0]
    corrupt = inverse.corrupt if isinstance(problem, inverse.Problem) else synthetic.corrupt
    q, sol = problem.question, problem.solution
    msgs, w = [{"role": "user", "content": q}], [0.0]
    if shape == "check":
        if not isinstance(problem, inverse.Problem):
            raise ValueError("the check shape is the inverse task's: its solutions end with a forward check")
        attempt = corrupt(problem, rng)
        return msgs + [{"role": "assistant", "content": attempt, "weight_from": attempt.index(inverse.CHECK)}], [0.0, 1.0]
    again = {"role": "user", "content": render_feedback(feedback, q)}
    if shape in ("fix", "fix2"):
        for _ in range(1 if shape == "fix" else 2):
            msgs += [{"role": "assistant", "content": corrupt(problem, rng)}, again]
            w += [0.0, 0.0]
    elif shape == "keep":
        msgs += [{"role": "assistant", "content": sol}, again]
        w += [1.0, 0.0]
    msgs.append({"role": "assistant", "content": sol})
    w.append(1.0)
    return msgs, w


class BaseStream(IterableDataset):
    """An endless stream of encoded base conversations over a mix of difficulties, of the forward
    (`synthetic`) or the `inverse` problems, in the given conversation shapes (default: all)."""

    def __init__(self, tokenizer, seed: int, max_len: int = 512, levels: list[str] | None = None,
                 dataset: str = "synthetic", shapes: list[str] | None = None) -> None:
        self.tokenizer, self.seed, self.max_len, self.shapes = tokenizer, seed, max_len, shapes
        self.family = inverse if dataset == "inverse" else synthetic
        self.levels = [self.family.LEVELS[name] for name in (levels or list(self.family.LEVELS))]

    def __iter__(self):
        info = get_worker_info()
        rng = random.Random(self.seed * 1000 + (info.id if info else 0))
        while True:
            problem = self.family.generate(rng, rng.choice(self.levels), "train")
            ids, w = encode_example(self.tokenizer, *base_conversation(rng, problem, shapes=self.shapes))
            if len(ids) <= self.max_len:
                yield ids, w


def tokenizer_corpus(seed: int = 0, count: int = 4000) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        p = synthetic.generate(rng, rng.choice(list(synthetic.LEVELS.values())), "train")
        texts += [p.question, p.solution, render_feedback(DEFAULT_FEEDBACK, p.question)]
    return texts


def run(out: Path, size: str, cfg: TrainConfig, batch_size: int, device: str | None, seed: int, workers: int,
        init: Path | None = None, levels: list[str] | None = None, dataset: str = "synthetic",
        shapes: list[str] | None = None) -> dict:
    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if init is not None:  # continue training an earlier checkpoint (its tokenizer too)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(init)
        model = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32)
    else:
        tokenizer = build_tokenizer(tokenizer_corpus(seed))
        model = new_model(tokenizer, size)
    n_params = sum(p.numel() for p in model.parameters())
    loader = DataLoader(BaseStream(tokenizer, seed, levels=levels, dataset=dataset, shapes=shapes),
                        batch_size=batch_size, num_workers=workers,
                        collate_fn=lambda ex: collate(ex, tokenizer.pad_token_id), pin_memory=dev.type == "cuda",
                        persistent_workers=workers > 0, prefetch_factor=8 if workers else None)
    t0 = time.time()
    stats = train(model, iter(loader), cfg, dev)
    save(model, tokenizer, out)
    info = {"recipe": "base", "size": size, "init": str(init) if init else None, "levels": levels or list(synthetic.LEVELS),
            "dataset": dataset, "shapes": shapes or list(DEFAULT_SHAPES), "parameters": n_params, "device": str(dev),
            "device_name": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
            "batch_size": batch_size, "seed": seed, "config": vars(cfg), "train": stats,
            "wall_s": round(time.time() - t0, 1)}
    (out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def save(model, tokenizer, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    model.float()
    tokenizer.save_pretrained(out)
    like_the_rest(out)


def like_the_rest(out: Path) -> None:
    """safetensors writes its files 0600 whatever the umask: give the weights the mode every other file
    gets (0666 less the umask), so that whoever may read the config may read the weights."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    for f in out.glob("*.safetensors"):
        f.chmod(0o666 & ~mask)


def main(argv: list[str] | None = None) -> int:
    a = parse_base(argv)
    cfg = TrainConfig(lr=a.lr, steps=a.steps, minutes=a.minutes, warmup_steps=min(200, max(1, a.steps // 10)),
                      grad_accum=a.grad_accum, grad_checkpointing=a.grad_checkpointing)
    info = run(a.out, a.size, cfg, a.batch_size, a.device, a.seed, a.workers, a.init, a.levels, a.dataset, a.shapes)
    print(json.dumps(info["train"] | {"parameters": info["parameters"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
