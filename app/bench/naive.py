"""The naive contender: what a user writes without this project, a Python loop over turns calling
transformers `generate` on the whole conversation, one request at a time. It runs in a process of
its own (as a user's script would), so that it can take turns with the other contenders in the same
rounds without sharing this process's torch threads: `NaiveProcess` sends it problem indices on
stdin and reads each refinement's outcome back as a JSON line.

    python -m app.bench.naive MODEL QUESTIONS.json TURNS MAX_TOKENS [DEVICE] < indices
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch

from app.answers.checker import get_checker
from app.bench.load import Outcome
from app.refine.feedback import render_feedback
from app.refine.types import DEFAULT_FEEDBACK


class NaiveProcess:
    """The naive loop in a child process; `send(i)` refines question i there."""

    name = "naive"

    def __init__(self, model: str, questions: list[str], turns: int, max_tokens: int, device: str | None = None) -> None:
        fd, self._questions = tempfile.mkstemp(prefix="rise-naive-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(questions, f)
        self._log = Path(self._questions).with_suffix(".log")
        self._args = [sys.executable, "-m", "app.bench.naive", model, self._questions, str(turns), str(max_tokens),
                      device or ""]
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()  # one request at a time

    async def send(self, i: int) -> Outcome:
        async with self._lock:
            if self._proc is None:
                with self._log.open("w") as err:
                    self._proc = await asyncio.create_subprocess_exec(
                        *self._args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
                        cwd=Path(__file__).resolve().parents[2], limit=2**20)
            self._proc.stdin.write(f"{i}\n".encode())
            await self._proc.stdin.drain()
            line = await self._proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the naive loop's process ended: {self._log.read_text()[-2000:]}")
            return Outcome(**json.loads(line))

    async def aclose(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 30)
            except asyncio.TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        for path in (self._questions, self._log):
            Path(path).unlink(missing_ok=True)


class NaiveLoop:
    """The loop itself, in the child process."""

    def __init__(self, model: str, turns: int, max_tokens: int, device: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.tok = AutoTokenizer.from_pretrained(model)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self.device).eval()
        self.turns, self.max_tokens = turns, max_tokens
        self.checker = get_checker("synthetic")

    def refine(self, question: str) -> Outcome:
        from transformers import StoppingCriteria

        class FirstToken(StoppingCriteria):  # called once per generated token: note the first
            def __init__(self):
                self.at = None

            def __call__(self, input_ids, scores, **kwargs):
                self.at = self.at or time.perf_counter()
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        with torch.no_grad():
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


def main(argv: list[str]) -> int:
    model, questions, turns, max_tokens, device = argv
    questions = json.loads(Path(questions).read_text())
    out, sys.stdout = sys.stdout, sys.stderr  # stdout carries the outcomes alone
    loop = NaiveLoop(model, int(turns), int(max_tokens), device or None)
    for line in sys.stdin:
        print(json.dumps(asdict(loop.refine(questions[int(line)]))), file=out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
