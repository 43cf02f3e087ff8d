"""LoRA adapters served beside their base model: `rise serve --lora NAME=PATH` (RISE_LORA).

A request names an adapter by its `model` (OpenAI's convention; `/v1/models` lists each adapter
with `parent`, the base model's id). The route picks that adapter's `AdapterEngine`, a view of the
one base engine under the adapter's name: its calls carry the adapter (`CALL_ADAPTER`) to the engine,
which applies it per sequence:

- embedded (hf): every adapter is loaded once with PEFT into the base model (`LoraSet`); one running
  batch mixes sequences of any adapters and of the base, each model call passing PEFT its rows'
  adapter names (PEFT's mixed-adapter batches). Outside those calls no adapter is active. A
  sequence's prompt KV is cached per adapter (`app/engines/prefix_cache.py`, `Prompt`);
- vllm: the adapters go in as `LoRARequest`s (`enable_lora`); on the CPU the base model's rows run
  an all-zero adapter (`zero_adapter`: vLLM's CPU ops would give them the last adapter);
- openai (remote): the adapter's name is sent upstream as `model` (the upstream serves it).

    pytest tests/engines/test_adapters.py tests/api/test_lora_serving.py
"""

from __future__ import annotations

import contextvars
import json
import re
from pathlib import Path
from typing import Sequence

from app.engines.base import Conversation, DeltaCallback, EngineInfo, SamplingParams

# The adapter an engine call runs under (None: the base model): set by `AdapterEngine.generate`
# around its call into the base engine, read by the engine when the call arrives.
CALL_ADAPTER: contextvars.ContextVar[str | None] = contextvars.ContextVar("rise_call_adapter", default=None)
BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


def current_adapter() -> str | None:
    return CALL_ADAPTER.get()


def adapter_problem(path: Path | str) -> str | None:
    """Why `path` is not a PEFT LoRA adapter directory (None when it is one)."""
    config = Path(path) / "adapter_config.json"
    if not config.is_file():
        return f"{path} is not a LoRA adapter directory (no adapter_config.json)"
    try:
        kind = json.loads(config.read_text()).get("peft_type")
    except (OSError, ValueError, AttributeError) as e:
        return f"{config} cannot be read: {e}"
    if kind != "LORA":
        return f"{path} holds a {kind} adapter; only LoRA adapters are served"
    return None


def parse_lora(value) -> dict[str, str | None]:
    """RISE_LORA / `--lora`: a dict, a JSON object, or `NAME=PATH` items (a list, or comma-separated);
    a bare `NAME` (no path) names an adapter a remote upstream serves."""
    if isinstance(value, dict):
        items = list(value.items())
    else:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                return parse_lora(json.loads(text))
            value = [p for p in text.split(",") if p.strip()]
        items = []
        for item in value:
            name, sep, path = str(item).strip().partition("=")
            items.append((name.strip(), path.strip() if sep else None))
    out: dict[str, str | None] = {}
    for name, path in items:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"adapter name {name!r} must be 1-128 letters, digits or ._:/- (starting with a letter "
                             "or digit); give NAME=PATH")
        if name in out:
            raise ValueError(f"adapter {name!r} is given twice")
        out[name] = str(path) if path else None
    return out


def check_adapters(lora: dict[str, str | None], engine: str, served: str) -> None:
    """A ValueError saying what is wrong with the adapters for this engine and base model name."""
    for name, path in lora.items():
        if name == served:
            raise ValueError(f"adapter {name!r} has the base model's name; name it differently")
        if engine == "openai":
            if path:
                raise ValueError(f"adapter {name}={path}: a remote upstream loads its own adapters; give --lora {name} "
                                 "(the name the upstream serves it under)")
        elif not path:
            raise ValueError(f"adapter {name!r} needs a path: --lora {name}=PATH (a PEFT LoRA adapter directory)")
        elif problem := adapter_problem(path):
            raise ValueError(f"adapter {name}: {problem}")


def lora_rank(path: str | Path) -> int:
    return int(json.loads((Path(path) / "adapter_config.json").read_text()).get("r", 8))


def zero_adapter(like: str | Path, out: Path) -> Path:
    """An adapter that changes nothing (every lora_B zero), shaped like `like`: vLLM's CPU LoRA ops
    index the stacked adapters with a row's slot, and a row without an adapter (slot -1) picks the
    last one, so on the CPU the base model's rows run this adapter instead of none."""
    import shutil

    from safetensors.torch import load_file, save_file

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(Path(like) / "adapter_config.json", out / "adapter_config.json")
    weights = load_file(str(Path(like) / "adapter_model.safetensors"))
    save_file({k: v.zero_() if "lora_B" in k else v for k, v in weights.items()}, str(out / "adapter_model.safetensors"))
    return out


class LoraSet:
    """Adapters loaded with PEFT into an HF model (in place); `forward` runs the model with each row's
    adapter (None: the base) in one call. No adapter is active in any other call of the model."""

    def __init__(self, model, paths: dict[str, str]) -> None:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTunerLayer

        names = list(paths)
        self.peft = PeftModel.from_pretrained(model, paths[names[0]], adapter_name=names[0])
        for name in names[1:]:
            self.peft.load_adapter(paths[name], adapter_name=name)
        self.peft.eval()
        for m in model.modules():  # plain calls of the model compute the base; rows choose theirs
            if isinstance(m, BaseTunerLayer):
                m.set_adapter([])
        self.names = frozenset(names)

    def forward(self, adapters: Sequence[str | None], **kwargs):
        return self.peft(adapter_names=[a or BASE for a in adapters], **kwargs)


class AdapterEngine:
    """The base engine under an adapter's name: `generate` runs the adapter, the rest is the base's."""

    def __init__(self, base, name: str, owns_base: bool = False) -> None:
        self.base, self.name, self.owns_base = base, name, owns_base

    @property
    def info(self) -> EngineInfo:
        info = self.base.info
        return EngineInfo(model_name=self.name, max_context=info.max_context,
                          extra={**info.extra, "adapter": self.name, "parent": info.model_name})

    def __getattr__(self, attr):  # encode, pending, prefix_cache...: the base engine's
        return getattr(self.base, attr)

    async def generate(self, prompts: Sequence[Conversation], params: SamplingParams,
                       on_delta: DeltaCallback | None = None):
        token = CALL_ADAPTER.set(self.name)
        try:
            return await self.base.generate(prompts, params, on_delta)
        finally:
            CALL_ADAPTER.reset(token)

    async def health(self) -> bool:
        return await self.base.health()

    async def aclose(self) -> None:
        if self.owns_base:
            await self.base.aclose()


def adapter_engines(base, lora: dict[str, str | None]) -> dict[str, AdapterEngine]:
    return {name: AdapterEngine(base, name) for name in lora}


async def open_adapter(engine: str, base_model: str | Path, adapter: str | Path, name: str = "adapter",
                       **kwargs) -> AdapterEngine:
    """An engine on `base_model` running `adapter` (for training's rollouts and evaluation); closing
    it closes the base engine."""
    from app.engines.factory import open_engine

    base = await open_engine(engine, str(base_model), lora={name: str(adapter)}, **kwargs)
    return AdapterEngine(base, name, owns_base=True)
