"""The engine registry: a name and options in, a started engine out. vLLM and the remote client
are imported only when asked for, so the base install stays light."""

from __future__ import annotations

import asyncio
import logging

from app.engines.base import Engine, EngineError

ENGINES = ("hf", "vllm", "openai")
log = logging.getLogger(__name__)


def make_engine(name: str, model: str, *, device: str | None = None, max_batch_size: int = 32,
                base_url: str | None = None, api_key: str | None = None, model_name: str | None = None,
                engine_args: dict | None = None, prefix_cache_mb: float = 256,
                timeout_s: float | None = None, cuda_graphs: bool = True,
                session_header: str | None = "X-Session-ID", lora: dict[str, str] | None = None,
                speculative=None) -> Engine:
    """Build an engine (blocking: loads weights). Remote engines still need `start()`; `timeout_s`
    bounds a remote engine's wait for its upstream (the server passes its request timeout); `lora`:
    LoRA adapters to load beside the model, name -> directory (app/engines/adapters.py); `speculative`: a
    `SpecConfig` (app/engines/speculative.py; None: its defaults), vLLM's ngram speculation where it can run."""
    if name == "hf":
        from app.engines.hf import HFEngine

        return HFEngine(model, device=device, max_batch_size=max_batch_size, model_name=model_name,
                        prefix_cache_mb=prefix_cache_mb, cuda_graphs=cuda_graphs, lora=lora or None,
                        speculative=speculative)
    if name == "vllm":
        from app.engines.vllm_engine import VLLMEngine, with_speculation

        return VLLMEngine(model, model_name=model_name, lora=lora or None,
                          **with_speculation(engine_args or {}, speculative))
    if name == "openai":
        from app.engines.openai_remote import OpenAIEngine

        return OpenAIEngine(base_url, api_key=api_key, model=model_name, session_header=session_header,
                            **({"timeout_s": timeout_s} if timeout_s else {}))
    raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")


async def open_engine(name: str, model: str, *, strict: bool = True, **kwargs) -> Engine:
    """Build and start an engine. With strict=False a remote upstream that is down at start-up is
    tolerated: the engine is returned and readiness reports the upstream's state."""
    engine = await asyncio.to_thread(make_engine, name, model, **kwargs)
    start = getattr(engine, "start", None)
    if start is not None:
        try:
            await start()
        except EngineError as e:
            if strict:
                await engine.aclose()
                raise
            log.warning("engine started without its upstream: %s", e)
    return engine
