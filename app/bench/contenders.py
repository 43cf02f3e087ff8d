"""What `rise bench` compares, each sending the same 5-turn, no-oracle, greedy refinements of the
same held-out problems (RISE's protocol: the same feedback every turn, the `last` window):

- `NaiveProcess` (app/bench/naive.py): what a user writes without this project: a Python loop over
  turns calling transformers `generate` on the whole conversation, one request at a time;
- `Raw`: the refinement loop straight on the embedded engine, in this process (no HTTP, no service);
  `raw-eager` the same with CUDA graphs off (the eager decode step; the same as `raw` on a CPU);
  `raw` runs without prompt-lookup speculation, `raw-spec` with it (app/engines/speculative.py);
- `RawVLLM`: the refinement loop straight on vLLM's in-process engine (`raw-vllm`), the way `Raw` is
  for the embedded engine: what `rise-serve-vllm` is measured against;
- `Served`: rise-serve over HTTP (a `rise serve` subprocess, any engine), driven by async clients;
  `rise-serve-agree` is the same server asked to stop once two turns agree (`early_stop: agree`);
  `rise-serve` runs with RISE_SPECULATIVE=false, `rise-serve-spec` with it true.

    python -m app.bench.cli --quick
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from app.answers.checker import get_checker
from app.api import launch
from app.bench.load import Outcome
from app.engines.base import SamplingParams
from app.refine.loop import refine
from app.refine.types import RefineConfig


class Raw:
    name = "raw"

    def __init__(self, model: str, questions: list[str], turns: int, max_tokens: int, device: str | None = None,
                 max_batch_size: int = 32, cuda_graphs: bool = True, speculative: bool = False) -> None:
        from app.engines.hf import HFEngine
        from app.engines.speculative import SpecConfig

        self.engine = HFEngine(model, device=device, max_batch_size=max_batch_size, cuda_graphs=cuda_graphs,
                               speculative=SpecConfig(enabled=speculative))
        self._setup(questions, turns, max_tokens)

    async def speculation(self) -> dict:
        """Acceptance by turn of the engine's speculation so far (empty without it)."""
        return by_turn({str(t): (s.drafted, s.accepted, s.verified) for t, s in self.engine.spec.stats.snapshot().items()})

    def _setup(self, questions: list[str], turns: int, max_tokens: int) -> None:
        self.questions = questions
        self.config = RefineConfig(max_turns=turns, sampling=SamplingParams(max_tokens=max_tokens))
        self.checker = get_checker("synthetic")

    async def send(self, i: int) -> Outcome:
        start = time.perf_counter()
        r = await refine(self.engine, self.questions[i], self.checker, self.config)
        return Outcome(time.perf_counter() - start, r.completion_tokens, r.prompt_tokens,
                       [t.ttft_s for t in r.turns], r.final_answer)

    async def aclose(self) -> None:
        await self.engine.aclose()


class RawVLLM(Raw):
    """The loop on vLLM's in-process engine with `rise serve --engine vllm`'s default arguments."""

    name = "raw-vllm"

    def __init__(self, model: str, questions: list[str], turns: int, max_tokens: int, device: str | None = None,
                 engine_args: dict | None = None) -> None:
        from app.engines.vllm_engine import VLLMEngine

        self.engine = VLLMEngine(model, **(engine_args or {}))
        self._setup(questions, turns, max_tokens)


class Served:
    """rise-serve in a subprocess on a free port; `engine` is any `rise serve --engine` value."""

    def __init__(self, model: str, questions: list[str], turns: int, max_tokens: int, device: str | None = None,
                 engine: str = "hf", max_batch_size: int = 32, clients: int = 32, env: dict | None = None,
                 early_stop: str = "none") -> None:
        self.name = "rise-serve" if engine == "hf" else f"rise-serve-{engine}"
        self.questions, self.turns, self.max_tokens, self.early_stop = questions, turns, max_tokens, early_stop
        env = {"RISE_MODEL": model, "RISE_ENGINE": engine, "RISE_MAX_BATCH_SIZE": str(max_batch_size),
               "RISE_MAX_IN_FLIGHT": str(max(64, clients)), "RISE_LOG_LEVEL": "warning", **(env or {})}
        if device:
            env["RISE_DEVICE"] = device
        self.proc, self.url, self.log = launch.start(env, timeout=600, log_name="rise-bench")
        self.client = httpx.AsyncClient(base_url=self.url, timeout=600,
                                        limits=httpx.Limits(max_connections=clients + 4))

    async def send(self, i: int) -> Outcome:
        start = time.perf_counter()
        r = await self.client.post("/v1/refine", json={
            "question": self.questions[i], "max_turns": self.turns, "max_tokens": self.max_tokens, "temperature": 0,
            "early_stop": self.early_stop})
        r.raise_for_status()
        body = r.json()
        return Outcome(time.perf_counter() - start, body["usage"]["completion_tokens"], body["usage"]["prompt_tokens"],
                       [t["ttft_s"] for t in body["turns"]], body["final_answer"])

    def rss_mb(self, field: str = "VmRSS") -> float:
        """The server's resident memory now (VmHWM: its peak so far), in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
        return float("nan")

    async def speculation(self) -> dict:
        """Acceptance by turn of the server's speculation so far, from its /metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        text = (await self.client.get("/metrics")).text
        counts: dict[str, list[float]] = {}
        names = ("rise_spec_draft_tokens", "rise_spec_accepted_tokens", "rise_spec_verify_rows")
        for family in text_string_to_metric_families(text):
            if family.name in names:
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        counts.setdefault(sample.labels["turn"], [0, 0, 0])[names.index(family.name)] += sample.value
        return by_turn({t: tuple(c) for t, c in counts.items()})

    async def aclose(self) -> None:
        await self.client.aclose()
        await asyncio.to_thread(launch.stop, self.proc, 60)


def by_turn(counts: dict[str, tuple]) -> dict:
    """turn -> drafted, accepted, acceptance rate and mean accepted length (accepted tokens per
    sequence verify pass), from (drafted, accepted, verified) counts."""
    out = {}
    for turn, (drafted, accepted, verified) in sorted(counts.items(), key=lambda kv: (len(kv[0]), kv[0])):
        if drafted:
            out[turn] = {"drafted": int(drafted), "accepted": int(accepted), "acceptance": round(accepted / drafted, 3),
                         "mean_accepted_length": round(accepted / verified, 2) if verified else None}
    return out
