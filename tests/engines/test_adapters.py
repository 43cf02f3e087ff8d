"""LoRA adapters in the embedded engine (app/engines/adapters.py): one running batch mixes rows of
the base model and of two adapters, and each row's greedy output equals its adapter's merged weights
run alone; prompt KV is cached per adapter."""

import asyncio

import pytest

from app.engines.adapters import AdapterEngine, check_adapters, parse_lora
from app.engines.base import EngineError, SamplingParams
from app.engines.hf import HFEngine
from app.engines.prefix_cache import PrefixCache, Prompt
from tests.lora import make_adapter

QUESTIONS = ["Sam has 3 apples. He buys 4 more. How many apples does Sam have now?",
             "Ana has 68 marbles. She ends up with 26 times as many. Then she buys 91 more. How many marbles does "
             "Ana have now?",
             "Tom has 47 cards. He gives away 19. Then he ends up with 7 times as many. How many cards does Tom have now?"]
CONVS = [[{"role": "user", "content": q}] for q in QUESTIONS]
GREEDY = SamplingParams(max_tokens=60)


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, model_path):
    d = tmp_path_factory.mktemp("lora")
    for name, seed in (("a", 1), ("b", 2)):
        make_adapter(model_path, d / name, seed, merged=d / f"{name}-merged")
    return d


async def _alone(path) -> list[str]:
    engine = HFEngine(path)
    try:
        return [c[0].text for c in await engine.generate(CONVS, GREEDY)]
    finally:
        await engine.aclose()


def test_a_mixed_batch_gives_each_row_its_adapters_greedy_output(adapters, model_path):
    expected = {"base": asyncio.run(_alone(model_path)), "a": asyncio.run(_alone(adapters / "a-merged")),
                "b": asyncio.run(_alone(adapters / "b-merged"))}
    assert expected["a"] != expected["base"] and expected["b"] != expected["a"]  # the adapters change the model

    async def mixed():
        engine = HFEngine(model_path, lora={"a": str(adapters / "a"), "b": str(adapters / "b")}, max_batch_size=16)
        engine.batch_wait_s = 1.0  # every call's rows join the first batch
        views = {"base": engine, "a": AdapterEngine(engine, "a"), "b": AdapterEngine(engine, "b")}
        try:
            first = await asyncio.gather(*[v.generate(CONVS, GREEDY) for v in views.values()])
            sizes = list(engine.batch_sizes)
            # again in another order: each adapter's prompts now come from the prefix cache, its own
            again = await asyncio.gather(*[views[k].generate(CONVS, GREEDY) for k in ("b", "base", "a")])
            return dict(zip(views, first)), dict(zip(("b", "base", "a"), again)), sizes, engine.prefix_cache.stats
        finally:
            await engine.aclose()

    first, again, sizes, stats = asyncio.run(mixed())
    assert max(sizes) == 9  # three questions under three models, decoded in one batch
    for name in expected:
        assert [c[0].text for c in first[name]] == expected[name], name
        assert [c[0].text for c in again[name]] == expected[name], name
    assert stats.hit_tokens > 0


def test_an_adapter_not_loaded_is_an_engine_error(model_path):
    async def go():
        engine = HFEngine(model_path)
        try:
            await AdapterEngine(engine, "nope").generate(CONVS[:1], GREEDY)
        finally:
            await engine.aclose()

    with pytest.raises(EngineError, match="'nope' is not loaded"):
        asyncio.run(go())


def test_prompt_keys_and_cache_entries_are_per_adapter():
    import torch

    ids = tuple(range(40))
    assert Prompt(ids, "a") != ids and Prompt(ids, "a") != Prompt(ids, "b") and Prompt(ids, "a") == Prompt(ids, "a")
    assert len({ids, Prompt(ids, "a"), Prompt(ids, "b"), Prompt(ids, "a")}) == 3
    cache = PrefixCache(1 << 20)
    kv = [(torch.zeros(1, 40, 2), torch.zeros(1, 40, 2))]
    cache.insert(Prompt(ids, "a"), kv)
    assert cache.lookup(ids)[1] == 0 and cache.lookup(Prompt(ids, "b"))[1] == 0
    assert cache.lookup(Prompt(ids + (99,), "a"))[1] == 40


def test_lora_settings_are_parsed_and_checked(adapters):
    assert parse_lora(["a=/x", "b = /y"]) == {"a": "/x", "b": "/y"}
    assert parse_lora('{"a": "/x"}') == {"a": "/x"} and parse_lora("a=/x,up") == {"a": "/x", "up": None}
    for bad, message in ((["a=/x", "a=/y"], "given twice"), (["=/x"], "adapter name"), (["a b=/x"], "adapter name")):
        with pytest.raises(ValueError, match=message):
            parse_lora(bad)
    check_adapters({"a": str(adapters / "a")}, "hf", "rise-synth")
    for lora, engine, message in (({"a": str(adapters / "a-merged")}, "hf", "no adapter_config.json"),
                                  ({"a": None}, "hf", "needs a path"), ({"rise-synth": str(adapters / "a")}, "hf",
                                                                         "base model's name"),
                                  ({"a": str(adapters / "a")}, "openai", "loads its own adapters")):
        with pytest.raises(ValueError, match=message):
            check_adapters(lora, engine, "rise-synth")
