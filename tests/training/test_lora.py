"""LoRA training (app/training/lora.py) on the shipped model: the adapter trains (its loss falls, the
base weights stay as they were), saves, reloads in the serving engine, and its merged weights give
the same greedy tokens; `rise train rise --lora-r` writes an adapter or (`--merge`) a model."""

import argparse
import asyncio
import json
import random

import pytest
import torch
from transformers import AutoTokenizer

from app.engines.adapters import AdapterEngine
from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.tasks import synthetic
from app.training import lora
from app.training.base import base_conversation
from app.training.data import collate, encode_example, weighted_loss
from app.training.rise import main
from app.training.sft import TrainConfig, train

QUESTIONS = ["Ana has 68 marbles. She ends up with 26 times as many. Then she buys 91 more. How many marbles does "
             "Ana have now?", "Sam has 3 apples. He buys 4 more. How many apples does Sam have now?",
             "Tom has 47 cards. He gives away 19. Then he ends up with 7 times as many. How many cards does Tom have now?"]


def _options(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"lora_r": 8, "lora_alpha": 16.0, "lora_dropout": 0.0, "lora_targets": ["all-linear"],
                                 **kw})


async def _greedy(engine) -> list[str]:
    try:
        out = await engine.generate([[{"role": "user", "content": q}] for q in QUESTIONS], SamplingParams(max_tokens=60))
        return [c[0].text for c in out]
    finally:
        await engine.aclose()


def test_an_adapter_trains_alone_saves_reloads_and_merges_to_the_same_tokens(tmp_path, model_path):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = lora.trainable(model_path, None, _options())
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if n not in trained}
    rng = random.Random(0)
    rows = [encode_example(tokenizer, *base_conversation(rng, synthetic.generate(rng, synthetic.LEVELS["easy"], "train")))
            for _ in range(6)]
    batch = collate(rows, tokenizer.pad_token_id)

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return weighted_loss(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                                 batch).item()

    before = loss()
    train(model, iter([batch] * 12), TrainConfig(lr=5e-3, steps=12, warmup_steps=1, log_every=4), torch.device("cpu"))
    after = loss()
    assert after < 0.8 * before
    assert all(torch.equal(p, base[n]) for n, p in model.named_parameters() if n in base)  # the model is frozen

    lora.save_adapter(model, tokenizer, tmp_path / "adapter", model_path)
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["base_model_name_or_path"] == str(model_path.resolve())
    reloaded = lora.trainable(model_path, tmp_path / "adapter", _options())  # the next iteration's start
    assert abs(_loss_of(reloaded, batch) - after) < 1e-4
    lora.merge(model_path, tmp_path / "adapter", tmp_path / "merged")

    served = HFEngine(model_path, lora={"t": str(tmp_path / "adapter")})
    through_adapter = asyncio.run(_greedy(AdapterEngine(served, "t", owns_base=True)))
    assert through_adapter == asyncio.run(_greedy(HFEngine(tmp_path / "merged")))
    assert through_adapter != asyncio.run(_greedy(HFEngine(model_path)))  # training changed the answers


def _loss_of(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        return weighted_loss(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                             batch).item()


MICRO = ["--problems", "4", "--iterations", "2", "--turns", "2", "--best-of", "2", "--epochs", "1", "--batch-size", "4",
         "--eval-limit", "2", "--lr", "1e-3"]


@pytest.mark.slow
def test_rise_train_with_lora_writes_an_adapter_and_says_how_to_serve_it(tmp_path, capsys):
    from tests.conftest import BASE_MODEL

    out = tmp_path / "adapter"
    assert main(["--model", str(BASE_MODEL), "--out", str(out), "--lora-r", "4", *MICRO]) == 0
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    assert (out / "iter-2" / "adapter_model.safetensors").is_file()
    mode = (out / "adapter_config.json").stat().st_mode
    assert (out / "adapter_model.safetensors").stat().st_mode == mode  # the weights as readable as the rest
    training = json.loads((out / "training.json").read_text())
    assert training["eval_start"]["n"] == 2 and len(training["iterations"]) == 2
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("rise train rise: 8 problems, ") and "loss " in last and " -> " in last
    assert f"--lora {out.name}={out.resolve()}" in last and "m1@t2 " in last

    merged = tmp_path / "merged"
    assert main(["--model", str(BASE_MODEL), "--out", str(merged), "--lora-r", "4", "--merge", *MICRO]) == 0
    assert (merged / "model.safetensors").is_file() and (merged / "config.json").is_file()
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(f"serve: rise serve --model {merged.resolve()}")


@pytest.mark.parametrize("argv, message", [
    (["--merge"], "--merge applies to LoRA training"),
    (["--lora-alpha", "4"], "--lora-alpha applies to LoRA training"),
    (["--lora-r", "0"], "--lora-r"),
])
def test_lora_options_without_lora_or_out_of_range_are_refused(tmp_path, model_path, argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--model", str(model_path), "--out", str(tmp_path), *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_target_modules_the_model_lacks_are_refused_before_any_work(tmp_path, model_path, capsys):
    assert main(["--model", str(model_path), "--out", str(tmp_path), "--lora-r", "4", "--lora-targets", "nope_proj",
                 "--problems", "2", "--iterations", "1"]) == 2
    assert "--lora-targets nope_proj" in capsys.readouterr().err and not (tmp_path / "iter-1").exists()
