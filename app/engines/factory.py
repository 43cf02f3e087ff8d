"""The engine registry: a name and options in, an engine out. vLLM and the remote client are
imported only when asked for, so the base install stays light."""

from __future__ import annotations

from app.engines.base import Engine

ENGINES = ("hf",)


def make_engine(name: str, model: str, *, device: str | None = None, max_batch_size: int = 32,
                base_url: str | None = None, model_name: str | None = None, **_: object) -> Engine:
    if name == "hf":
        from app.engines.hf import HFEngine

        return HFEngine(model, device=device, max_batch_size=max_batch_size, model_name=model_name)
    raise ValueError(f"unknown engine {name!r}; expected one of {', '.join(ENGINES)}")
