"""RISE: collect multi-turn data with the current model, fine-tune with exp(r/τ)-weighted loss on
assistant turns, evaluate, iterate. The same `refine` loop runs inside collection and evaluation,
scored by the task's checker (the one the server uses).

    rise train rise --model models/base-synth --out models/rise-synth --source self --iterations 2
    rise train rise --model /tmp/m --out /tmp/r --problems 8 --iterations 1 --eval-limit 4 --best-of 2   # micro
    rise train rise --model M --out O --dataset jsonl:train.jsonl --task gsm8k --eval dev.jsonl \\
        --source teacher --teacher-base-url http://127.0.0.1:8001/v1 --teacher-model big       # user data
    rise train rise --model models/rise-synth --out /tmp/t --from-traces data.jsonl --iterations 1  # served traffic
    rise train rise --model models/base-synth --out /tmp/l --lora-r 8 --iterations 1   # a LoRA adapter (app/training/lora.py)

It ends with one line: problems, conversations trained, loss, evaluation before and after, time,
where the result was written and the command that serves it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from app.training.args import parse_rise
from app.training import distributed, lora
from app.training.base import save
from app.training.collect import CollectConfig, collect, weight
from app.training.data import collate, encode_example
from app.training.from_traces import collect_traces
from app.training.sft import TrainConfig, train

PRIVATE = ("train_set", "eval_set", "traced", "teacher_api_key", "eval_start")  # not written to training.json


class TeacherError(RuntimeError):
    """The teacher could not be opened (its endpoint refused, or does not serve the model named)."""


def main(argv: list[str] | None = None) -> int:
    from app.engines.base import EngineError

    a = parse_rise(argv)
    t0 = time.monotonic()
    try:
        history = asyncio.run(run(a))
    except (EngineError, TeacherError, lora.LoraError) as e:  # a teacher that does not answer, a model that does not load
        print(f"rise train rise: error: {e}", file=sys.stderr)
        return 2
    if not history:  # another process of a multi-process run: the main one reports
        return 0
    print(json.dumps(history[-1], indent=2))
    print(summary(a, history, time.monotonic() - t0))
    return 0


def summary(a: argparse.Namespace, history: list[dict], seconds: float) -> str:
    """The run in one line: problems, conversations trained, loss first -> last, the evaluation before
    -> after (`OUT/training.json`'s eval_start and the last iteration's), time, and what was written
    where, with the command that serves it."""
    losses = [x for h in history for x in h["train"].get("loss_curve", [])]
    parts = [f"{sum(h['collect']['problems'] for h in history)} problems",
             f"{sum(h['collect']['examples'] for h in history)} conversations trained"]
    if losses:
        parts.append(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    start, end = getattr(a, "eval_start", None), history[-1].get("eval")
    if start and end:
        key = f"m1@t{a.turns}" if f"m1@t{a.turns}" in end else next(iter(end))
        parts.append(f"{key} {start[key]:.3f} -> {end[key]:.3f} on {end['n']} eval questions"
                     + (f", p1@t1 {start['p1@t1']:.3f} -> {end['p1@t1']:.3f}" if "p1@t1" in end else ""))
    parts.append(f"{seconds:.0f} s")
    out = a.out.resolve()
    if a.lora_r and not a.merge:
        wrote = f"adapter in {out}; serve: rise serve --model {Path(a.model).resolve()} --lora {out.name}={out}"
    else:
        wrote = f"model in {out}; serve: rise serve --model {out}"
    return f"rise train rise: {', '.join(parts)}; {wrote}"


async def run(a: argparse.Namespace) -> list[dict]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.tasks.registry import get_task

    torch.manual_seed(a.seed)
    # under `accelerate launch`: the main process collects and evaluates, every process trains its share
    acc = distributed.accelerator() if distributed.launched() else None
    lead = acc is None or acc.is_main_process
    device = acc.device if acc is not None else torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    task = get_task(a.task) if a.task else None  # traces: each its own
    rng = random.Random(a.seed)
    current = a.model
    teacher = await _open_teacher(a) if a.source == "teacher" and lead else None
    history: list[dict] = []
    a.out.mkdir(parents=True, exist_ok=True)
    # the frozen model --anchor keeps replayed turns close to: the same every iteration, loaded once
    reference = AutoModelForCausalLM.from_pretrained(a.anchor_model or a.model, dtype=torch.float32) if a.anchor else None
    if a.lora_r:
        lora.check_targets(a.model, a)
    items = _eval_items(a)
    a.eval_start = await _evaluate(a.model, a, items) if items and lead else None  # the starting model
    try:
        for it in range(1, a.iterations + 1):
            t0 = time.monotonic()
            tokenizer = AutoTokenizer.from_pretrained(current)
            encoded, stats, orders = await _collected(a, it, current, tokenizer, rng, task, teacher) if lead else (None,) * 3
            if acc is not None:
                encoded, stats, orders = distributed.share(acc, [encoded, stats, orders])
            t_collect = time.monotonic() - t0
            if a.lora_r:  # the adapter trains (the last iteration's, from the 2nd on), the model stays frozen
                model = lora.trainable(a.model, current if lora.is_adapter(current) else None, a)
            else:
                model = AutoModelForCausalLM.from_pretrained(current, dtype=torch.float32)
            steps = max(1, a.epochs * len(encoded) // a.batch_size)
            tcfg = TrainConfig(lr=a.lr, steps=steps, warmup_steps=max(1, steps // 20), min_lr_ratio=0.1, log_every=10,
                               grad_accum=a.grad_accum, grad_checkpointing=a.grad_checkpointing, fsdp=a.fsdp)
            batches = _epochs(encoded, a.batch_size, orders, tokenizer.pad_token_id)
            summary = train(model, batches, tcfg, device, reference, a.anchor, acc) if encoded else {"steps": 0}
            sharded = bool(encoded) and a.fsdp and acc is not None and acc.num_processes > 1
            if sharded:  # every process takes part in gathering the shards; the main process gets the model
                model = distributed.gathered(model, acc)
            step_dir = a.out / f"iter-{it}"
            current = step_dir
            if not lead:
                acc.wait_for_everyone()  # the main process saves (and evaluates) this iteration
                continue
            if acc is not None and not sharded:
                model = acc.unwrap_model(model)
            if a.lora_r:
                lora.save_adapter(model, tokenizer, step_dir, a.model)
            else:
                save(model, tokenizer, step_dir)
            record = {"iteration": it, "source": a.source, "collect": asdict(stats),
                      "train": summary, "collect_s": round(t_collect, 1), "seconds": round(time.monotonic() - t0, 1)}
            if items:
                record["eval"] = await _evaluate(step_dir, a, items)
            history.append(record)
            (a.out / "iterations.json").write_text(json.dumps(history, indent=2) + "\n")
            if acc is not None:
                acc.wait_for_everyone()
    finally:
        if teacher:
            await teacher.aclose()
    if not lead:
        return []
    if a.merge:  # the last iteration's adapter merged into the model is the result

        lora.merge(a.model, current, a.out)
    else:
        for f in current.iterdir():  # the last iteration is the result
            shutil.copy2(f, a.out / f.name)
    args = {k: (v.model_dump() if hasattr(v, "model_dump") else str(v)) for k, v in vars(a).items() if k not in PRIVATE}
    (a.out / "training.json").write_text(json.dumps({"recipe": "rise", "args": args, "eval_start": a.eval_start,
                                                     "iterations": history}, indent=2) + "\n")
    return history


async def _open_teacher(a: argparse.Namespace):
    """The teacher through the serving engines: a model directory (hf, vllm) or a remote
    OpenAI-compatible endpoint (the remote engine's timeouts, retries and Retry-After handling)."""
    from app.engines.base import EngineError
    from app.engines.factory import open_engine

    try:
        if a.teacher_engine == "openai":
            return await open_engine("openai", "", base_url=a.teacher_base_url, api_key=a.teacher_api_key,
                                     model_name=a.teacher_model, timeout_s=a.teacher_timeout)
        return await open_engine(a.teacher_engine, str(a.teacher), device=a.device, max_batch_size=a.engine_batch)
    except EngineError as e:
        raise TeacherError(f"the teacher: {e}") from None


async def _open(a: argparse.Namespace, model: Path):
    """An engine on a model directory, or on --model running an adapter directory (LoRA iterations)."""
    from app.engines.adapters import open_adapter
    from app.engines.factory import open_engine

    if lora.is_adapter(model):
        return await open_adapter(a.engine, a.model, model, device=a.device, max_batch_size=a.engine_batch)
    return await open_engine(a.engine, str(model), device=a.device, max_batch_size=a.engine_batch)


def _questions(a: argparse.Namespace, rng: random.Random) -> list:
    """This iteration's rollout questions: the traces, a sample of the dataset, or fresh synthetic problems."""
    from app.training import synthetic_recipe

    if a.traced is not None:
        return a.traced
    if a.train_set is None:
        return synthetic_recipe.draw(rng, a.problems, a.recipe)
    return rng.sample(a.train_set, min(a.problems, len(a.train_set)))


def _replay(a: argparse.Namespace, rng: random.Random, count: int, scale: float,
            single: bool) -> list[tuple[list[dict], list[float]]]:
    """Replayed conversations from the same dataset, weighted like a right RISE turn: the synthetic
    task's base recipe, or a file's questions with their worked solutions."""
    from app.training import synthetic_recipe

    if count <= 0:
        return []
    if a.train_set is None and a.traced is None:
        return synthetic_recipe.replay(rng, count, scale, single, a.recipe)
    solved = [q for q in a.train_set or [] if q.solution]
    return [([{"role": "user", "content": q.question}, {"role": "assistant", "content": q.solution}], [0.0, scale])
            for q in (rng.choice(solved) for _ in range(count if solved else 0))]


async def _collected(a: argparse.Namespace, it: int, current: Path, tokenizer, rng: random.Random, task, teacher):
    """This iteration's training data: rollouts of `current` on its questions, improved turns and
    replay, encoded; and each epoch's order of them (drawn now, so that every process of a
    multi-process run trains in the same order). Returns (encoded, collection stats, orders)."""
    from app.training import synthetic_recipe

    recipe = a.recipe
    questions = _questions(a, rng)
    engine = await _open(a, current)
    cfg = CollectConfig(source=a.source, turns=a.turns, best_of=a.best_of, temperature=a.temperature,
                        max_tokens=a.max_tokens, tau=a.tau, seed=a.seed * 100 + it, criterion=a.criterion,
                        later=recipe.later if recipe else 0.0, later_wrong=recipe.later_wrong if recipe else 0.4,
                        single_turn=a.single_turn)
    try:
        with tqdm(total=len(questions), desc=f"collect {it}", mininterval=15) as bar:
            if a.traced is not None:  # served traffic: its turns are the first iteration's rollouts
                examples, stats = await collect_traces(engine, questions, cfg, teacher, it == 1, bar.update)
            else:
                examples, stats = await collect(engine, questions, task, cfg, teacher, bar.update)
    finally:
        await engine.aclose()
    if a.source == "recheck":
        solver = synthetic_recipe.solver_written(rng, a.problems, recipe, a.tau)
        # the one-turn baseline: the same re-check texts, each the answer to its bare question
        examples += [synthetic_recipe.as_one_turn(e) for e in solver] if a.single_turn else solver
    if a.max_examples is not None and len(examples) > a.max_examples:  # another run's count (a same-data baseline)
        examples = rng.sample(examples, a.max_examples)
        stats.examples = len(examples)  # what trains; stats.collected keeps what was collected
    # recheck: replay first turns only (after feedback the model now re-checks instead)
    replay = _replay(a, rng, int(a.replay * len(examples)), weight(1, a.tau), single=a.source == "recheck")
    encoded = [encode_example(tokenizer, m, w) for m, w in examples]
    for ids, w in (encode_example(tokenizer, m, w) for m, w in replay):
        # anchored: replayed turns keep the anchor model's distribution (KL) instead of imitating the text
        encoded.append((ids, [0.0] * len(w), [float(x > 0) for x in w]) if a.anchor else (ids, w))
    orders = []
    for _ in range(a.epochs):
        order = list(range(len(encoded)))
        rng.shuffle(order)
        orders.append(order)
    return encoded, stats, orders


def _epochs(encoded, batch_size: int, orders: list[list[int]], pad_id: int):
    for order in orders:
        for i in range(0, len(order), batch_size):
            yield collate([encoded[j] for j in order[i:i + batch_size]], pad_id)


def _eval_items(a: argparse.Namespace) -> list:
    """What is evaluated after each iteration: the --eval file (its first --eval-limit), the held-out
    slice of a file, or synthetic validation problems; empty to skip."""
    from app.evaluation.runner import Item
    from app.training import synthetic_recipe

    if a.eval_set is not None:
        rows = a.eval_set[:a.eval_limit or None]
    elif a.eval_limit and a.recipe is not None:
        rows = synthetic_recipe.eval_problems(a.eval_limit, a.recipe)
    else:
        return []
    return [Item(q.question, q.answer) for q in rows]


async def _evaluate(model_dir: Path, a: argparse.Namespace, items: list) -> dict:
    """`rise eval`'s metrics (one seed) on the held-out questions, scored by the task's checker
    (never the test split of synthetic: settings are chosen here; model cards use `rise eval`)."""
    from app.evaluation.runner import EvalConfig, evaluate
    from app.tasks.registry import get_task

    checker = get_task(a.eval_task).checker
    engine = await _open(a, Path(model_dir))
    try:
        result = await evaluate(engine, items, checker, EvalConfig(turns=a.turns, seeds=(0,), temperature=a.temperature,
                                                                   max_tokens=a.max_tokens), progress=False)
    finally:
        await engine.aclose()
    return {k: v["mean"] for k, v in result["summary"].items()} | {"n": len(items)}
