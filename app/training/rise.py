"""RISE: collect multi-turn data with the current model, fine-tune with exp(r/τ)-weighted loss on
assistant turns, evaluate, iterate. The same `refine` loop runs inside collection and evaluation.

    rise train rise --model models/base-synth --out models/rise-synth --source self --iterations 2
    rise train rise --model /tmp/m --out /tmp/r --problems 8 --iterations 1 --eval-limit 4 --best-of 2   # micro
    rise train rise --model models/rise-synth --out /tmp/t --from-traces data.jsonl --iterations 1  # served traffic
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from app.tasks import synthetic
from app.training.args import parse_rise
from app.training.base import base_conversation, save
from app.training.collect import CollectConfig, collect, synthetic_recheck, weight
from app.training.data import collate, encode_example
from app.training.from_traces import collect_traces, load_traces
from app.training.sft import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    a = parse_rise(argv)
    history = asyncio.run(run(a))
    print(json.dumps(history[-1], indent=2))
    return 0


async def run(a: argparse.Namespace) -> list[dict]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.answers.checker import get_checker
    from app.engines.hf import HFEngine

    torch.manual_seed(a.seed)
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    checker = get_checker("synthetic")
    rng = random.Random(a.seed)
    current = a.model
    teacher = HFEngine(a.teacher, device=a.device, max_batch_size=a.engine_batch) if a.teacher else None
    history: list[dict] = []
    a.out.mkdir(parents=True, exist_ok=True)
    traced = load_traces(a.from_traces) if getattr(a, "from_traces", None) else None
    # the frozen model --anchor keeps replayed turns close to: the same every iteration, loaded once
    reference = AutoModelForCausalLM.from_pretrained(a.anchor_model or a.model, dtype=torch.float32) if a.anchor else None
    for it in range(1, a.iterations + 1):
        t0 = time.monotonic()
        problems = [synthetic.generate(rng, synthetic.LEVELS[a.level[0] if len(a.level) == 1 else rng.choice(a.level)],
                                       "train") for _ in range(a.problems)]  # one level: the rng draws as before
        engine = HFEngine(current, device=a.device, max_batch_size=a.engine_batch)
        cfg = CollectConfig(source=a.source, turns=a.turns, best_of=a.best_of, temperature=a.temperature, tau=a.tau,
                            seed=a.seed * 100 + it, later=a.later, later_wrong=a.later_wrong)
        with tqdm(total=len(traced or problems), desc=f"collect {it}", mininterval=15) as bar:
            if traced:  # served traffic: its turns are the first iteration's rollouts
                examples, stats = await collect_traces(engine, traced, checker, cfg, teacher, it == 1, bar.update)
            else:
                examples, stats = await collect(engine, problems, checker, cfg, teacher, bar.update)
        await engine.aclose()
        t_collect = time.monotonic() - t0

        tokenizer = AutoTokenizer.from_pretrained(current)
        model = AutoModelForCausalLM.from_pretrained(current, dtype=torch.float32)
        if a.source == "recheck" and a.solver_attempts:
            levels = a.solver_levels or a.level  # a share of the count per level named
            for name in levels:
                examples += synthetic_recheck(rng, int(a.solver_attempts * a.problems / len(levels)),
                                              synthetic.LEVELS[name], a.solver_right, a.tau)
        # recheck: replay first turns only (after feedback the model now re-checks instead)
        replay = _replay(rng, int(a.replay * len(examples)), weight(1, a.tau), single=a.source == "recheck",
                         levels=a.replay_levels)
        encoded = [encode_example(tokenizer, m, w) for m, w in examples]
        for ids, w in (encode_example(tokenizer, m, w) for m, w in replay):
            # anchored: replayed turns keep the anchor model's distribution (KL) instead of imitating the solver
            encoded.append((ids, [0.0] * len(w), [float(x > 0) for x in w]) if a.anchor else (ids, w))
        steps = max(1, a.epochs * len(encoded) // a.batch_size)
        tcfg = TrainConfig(lr=a.lr, steps=steps, warmup_steps=max(1, steps // 20), min_lr_ratio=0.1, log_every=10)
        batches = _epochs(encoded, a.batch_size, a.epochs, tokenizer.pad_token_id, rng)
        summary = train(model, batches, tcfg, device, reference, a.anchor) if encoded else {"steps": 0}
        step_dir = a.out / f"iter-{it}"
        save(model, tokenizer, step_dir)
        record = {"iteration": it, "source": a.source, "collect": asdict(stats), "train": summary,
                  "collect_s": round(t_collect, 1), "seconds": round(time.monotonic() - t0, 1)}
        if a.eval_limit:
            record["eval"] = await _quick_eval(step_dir, a, checker)
        history.append(record)
        (a.out / "iterations.json").write_text(json.dumps(history, indent=2) + "\n")
        current = step_dir
    for f in current.iterdir():  # the last iteration is the result
        shutil.copy2(f, a.out / f.name)
    (a.out / "training.json").write_text(json.dumps({"recipe": "rise", "args": {k: str(v) for k, v in vars(a).items()},
                                                      "iterations": history}, indent=2) + "\n")
    if teacher:
        await teacher.aclose()
    return history


def _replay(rng: random.Random, count: int, scale: float, single: bool = False,
            levels: list[str] | None = None) -> list[tuple[list[dict], list[float]]]:
    """Base-recipe conversations over `levels` (a name repeated weighs more; default every level once;
    the solver's solutions), weights scaled to match a correct RISE turn; `single`: the question and
    its solution only."""
    levels = [synthetic.LEVELS[name] for name in levels] if levels else list(synthetic.LEVELS.values())
    out = []
    for _ in range(count):
        p = synthetic.generate(rng, rng.choice(levels), "train")
        msgs, w = base_conversation(rng, p) if not single else (
            [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}], [0.0, 1.0])
        out.append((msgs, [x * scale for x in w]))
    return out


def _epochs(encoded, batch_size: int, epochs: int, pad_id: int, rng: random.Random):
    for _ in range(epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            yield collate([encoded[j] for j in order[i:i + batch_size]], pad_id)


async def _quick_eval(model_dir: Path, a: argparse.Namespace, checker) -> dict:
    """p1/m1 on a slice of the validation split (never the test split: settings are chosen here; the
    model card uses `rise eval` on 1,000 test problems)."""
    from app.engines.hf import HFEngine
    from app.evaluation.runner import EvalConfig, Item, evaluate

    items = [Item(p.question, p.answer) for p in synthetic.problems(4321, a.eval_limit, synthetic.LEVELS[a.level[0]], "validation")]
    engine = HFEngine(model_dir, device=a.device, max_batch_size=a.engine_batch)
    try:
        result = await evaluate(engine, items, checker, EvalConfig(turns=a.turns, seeds=(0,), temperature=a.temperature),
                                progress=False)
    finally:
        await engine.aclose()
    return {k: v["mean"] for k, v in result["summary"].items()}
