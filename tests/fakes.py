"""A scripted engine for unit tests of loop logic (the real engine has its own tests)."""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

from app.engines.base import Completion, Conversation, DeltaCallback, EngineInfo, SamplingParams


class FakeEngine:
    """Answers with `respond(prompt, sample_index, call_index)`; records every prompt it sees."""

    def __init__(self, respond: Callable[[Conversation, int, int], str], delay: float = 0.0) -> None:
        self.respond = respond
        self.delay = delay
        self.prompts: list[list[dict]] = []
        self.params: list[SamplingParams] = []
        self.calls = 0

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(model_name="fake", max_context=4096)

    async def generate(self, prompts: Sequence[Conversation], params: SamplingParams,
                       on_delta: DeltaCallback | None = None) -> list[list[Completion]]:
        out = []
        for i, p in enumerate(prompts):
            self.prompts.append([dict(m) for m in p])
            self.params.append(params)
            samples = []
            for j in range(params.n):
                if self.delay:
                    await asyncio.sleep(self.delay)
                text = self.respond(p, j, self.calls)
                if on_delta:
                    on_delta(i, j, text)
                samples.append(Completion(text, sum(len(m["content"]) for m in p), len(text.split())))
            out.append(samples)
        self.calls += 1
        return out

    async def health(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


def scripted(answers: list[str]) -> Callable[[Conversation, int, int], str]:
    """Turn k answers `answers[k-1]` (one sample per turn)."""
    return lambda _p, _j, call: f"Some steps. The answer is {answers[min(call, len(answers) - 1)]}."
