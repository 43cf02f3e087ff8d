"""What `rise bench` compares, each sending the same 5-turn, no-oracle, greedy refinements of the
same held-out problems (RISE's protocol: the same feedback every turn, the `last` window):

- `Naive`: what a user writes without this project: a Python loop over turns calling transformers
  `generate` on the whole conversation, one request at a time;
- `Raw`: the refinement loop straight on the embedded engine, in this process (no HTTP, no service);
- `Served`: rise-serve over HTTP (a `rise serve` subprocess, any engine), driven by async clients;
  `rise-serve-agree` is the same server asked to stop once two turns agree (`early_stop: agree`).

    python -m app.bench.cli --quick
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import torch

from app.answers.checker import get_checker
from app.api import launch
from app.bench.load import Outcome
from app.engines.base import SamplingParams
from app.refine.feedback import render_feedback
from app.refine.loop import refine
from app.refine.types import DEFAULT_FEEDBACK, RefineConfig


class Naive:
    name = "naive"

    def __init__(self, model: str, questions: list[str], turns: int, max_tokens: int, device: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.tok = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self.device).eval()
        self.questions, self.turns, self.max_tokens = questions, turns, max_tokens
        self.checker = get_checker("synthetic")
        self._one_at_a_time = threading.Lock()

    async def send(self, i: int) -> Outcome:
        return await asyncio.to_thread(self._refine, self.questions[i])

    def _refine(self, question: str) -> Outcome:
        from transformers import StoppingCriteria

        class FirstToken(StoppingCriteria):  # called once per generated token: note the first
            def __init__(self):
                self.at = None

            def __call__(self, input_ids, scores, **kwargs):
                self.at = self.at or time.perf_counter()
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        with self._one_at_a_time, torch.no_grad():
            start = time.perf_counter()
            messages = [{"role": "user", "content": question}]
            answers, ttft, prompt_tokens, completion_tokens = [], [], 0, 0
            for _ in range(self.turns):
                text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                ids = self.tok(text, add_special_tokens=False, return_tensors="pt").input_ids.to(self.device)
                first, t0 = FirstToken(), time.perf_counter()
                out = self.model.generate(ids, max_new_tokens=self.max_tokens, do_sample=False,
                                          pad_token_id=self.tok.pad_token_id, stopping_criteria=[first])
                ttft.append(first.at - t0 if first.at else None)
                new = out[0, ids.shape[1]:]
                reply = self.tok.decode(new, skip_special_tokens=True)
                prompt_tokens += ids.shape[1]
                completion_tokens += len(new)
                answers.append(self.checker.extract(reply))
                messages = [messages[0], {"role": "assistant", "content": reply},
                            {"role": "user", "content": render_feedback(DEFAULT_FEEDBACK, question)}]
            voted = Counter(a for a in answers if a is not None).most_common(1)
            return Outcome(time.perf_counter() - start, completion_tokens, prompt_tokens, ttft,
                           voted[0][0] if voted else None)

    async def aclose(self) -> None:
        del self.model


class Raw:
    name = "raw"

    def __init__(self, model: str, questions: list[str], turns: int, max_tokens: int, device: str | None = None,
                 max_batch_size: int = 32) -> None:
        from app.engines.hf import HFEngine

        self.engine = HFEngine(model, device=device, max_batch_size=max_batch_size)
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

    async def aclose(self) -> None:
        await self.client.aclose()
        await asyncio.to_thread(launch.stop, self.proc, 60)
