"""The base recipe end to end, in miniature: a loadable model that the engine can serve."""

import asyncio

from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.training.base import main


def test_micro_base_run_produces_a_servable_model(tmp_path):
    out = tmp_path / "m"
    assert main(["--out", str(out), "--size", "tiny", "--steps", "8", "--batch-size", "8", "--workers", "0"]) == 0
    for f in ("config.json", "model.safetensors", "tokenizer.json", "training.json"):
        assert (out / f).is_file()

    async def go():
        e = HFEngine(out)
        try:
            return await e.generate([[{"role": "user", "content": "Sam has 2 pens."}]], SamplingParams(max_tokens=4))
        finally:
            await e.aclose()

    [[c]] = asyncio.run(go())
    assert c.completion_tokens >= 1 and c.finish_reason in ("stop", "length")
