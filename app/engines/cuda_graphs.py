"""The embedded engine's decode step with static shapes, replayed as CUDA graphs on a GPU.

A 4.9M-parameter model's decode step is a few dozen tiny kernels per layer: on a GPU its cost is
kernel launches and Python, not arithmetic. Here every tensor the step touches lives at a fixed
address: the token ids, positions and KV columns of the rows (`inputs`), and the batch's KV buffers,
allocated once at their full size (every slot, every column of the context). A step of n rows runs
at the batch bucket b >= n (1, 2, 4, ... 64, then doubling; rows n..b-1 are padding that writes to
the trash column) and the column bucket w >= max(len) + 1 (128, 256, ... up to the context); each
(b, w) is captured once as a CUDA graph at start-up, after a warm-up, and replayed each step.
Sampling runs on the device with one host transfer per step (the tokens, with their log-probs when
asked). Prefill stays eager. On the CPU the same static step runs without capture: the tests check
it against the eager path (the reference).

    pytest tests/engines/test_cuda_graphs.py            # CPU: static step == eager path
    pytest tests/engines/test_cuda_graphs_gpu.py        # GPU: graph replay == eager == generate
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import torch

from app.engines.base import GREEDY_BELOW
from app.engines.hf_batch import Plan, Row, RunningBatch, slot_mask

log = logging.getLogger(__name__)

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
MIN_COLUMN_BUCKET = 128

Forward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, object], torch.Tensor]  # ids, mask, pos, cache -> logits


def batch_buckets(max_rows: int) -> list[int]:
    """The batch sizes steps run at: BATCH_BUCKETS up to the first that holds `max_rows`, doubling past 64."""
    out = [b for b in BATCH_BUCKETS if b < max_rows]
    b = out[-1] * 2 if out else 1
    while b < max_rows:
        out.append(b)
        b *= 2
    return out + [b]


def column_buckets(context: int) -> list[int]:
    """The attention widths steps run at: 128, 256, ... (doubling) below the context, then the context."""
    out, w = [], MIN_COLUMN_BUCKET
    while w < context:
        out.append(w)
        w *= 2
    return out + [context]


def bucket(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds n."""
    for b in buckets:
        if b >= n:
            return b
    raise ValueError(f"{n} exceeds the largest bucket {buckets[-1]}")


def static_decoder(forward: Forward, shapes: list[tuple[int, int]], dtype: torch.dtype, device: torch.device,
                   context: int, max_rows: int, pad_id: int, capture: bool) -> "StaticDecoder | None":
    """The static decoder for the engine (its graphs captured when `capture`), or None (the eager
    step, said in the log) when its full-size KV buffers would take more than half the free GPU memory."""
    rows = batch_buckets(max_rows)[-1]
    need = sum(2 * rows * heads * (context + 1) * dim for heads, dim in shapes) * torch.empty((), dtype=dtype).element_size()
    if device.type == "cuda" and need > torch.cuda.mem_get_info(device)[0] / 2:
        log.warning("static decode off: its KV buffers (%d slots x %d columns) need %.0f MiB, over half the free GPU "
                    "memory; decoding eagerly (lower RISE_MAX_BATCH_SIZE to use it)", rows, context + 1, need / 2**20)
        return None
    dec = StaticDecoder(forward, shapes, dtype, device, context, max_rows, pad_id)
    if capture:
        dec.capture()
    return dec


class StaticDecoder:
    """Owns a full-size `RunningBatch` and runs its decode steps at fixed shapes (graphs on CUDA)."""

    def __init__(self, forward: Forward, shapes: list[tuple[int, int]], dtype: torch.dtype, device: torch.device,
                 context: int, max_rows: int, pad_id: int) -> None:
        self.forward, self.dtype, self.device, self.pad_id = forward, dtype, device, pad_id
        self.buckets, self.widths = batch_buckets(max_rows), column_buckets(context)
        rows = self.buckets[-1]
        self.batch = RunningBatch(rows, shapes, dtype, device, context)
        self.batch.reserve(context, rows)  # every slot, every column: the buffers never move
        self.kv_bytes = sum(k.numel() * k.element_size() * 2 for k in self.batch.k)
        self.inputs = torch.zeros((3, rows), dtype=torch.long, device=device)  # ids, positions, KV columns
        self._staging = torch.zeros((3, rows), dtype=torch.long, pin_memory=device.type == "cuda")
        self._plans = {b: Plan(0, b, self.inputs[2, :b].view(b, 1), 0) for b in self.buckets}
        self.graphs: dict[tuple[int, int], tuple[object, torch.Tensor]] = {}  # (b, w) -> (graph, its logits)
        self.steps = 0

    def reset(self) -> RunningBatch:
        """The batch emptied (after a failed step): same buffers, so the captured graphs stay valid."""
        b = self.batch
        b.rows, b.lens, b.logits, b.plan = [], [], None, None
        return b

    # -- the step ----------------------------------------------------------------------------------

    def decode(self, tokens: Sequence[int], lens: Sequence[int]) -> torch.Tensor:
        """Run rows 0..n-1 one step (row r takes token `tokens[r]` at position `lens[r]`); returns their
        next-token logits [n, vocab], a view valid until the next step."""
        n = len(lens)
        b, w = bucket(n, self.buckets), bucket(max(lens) + 1, self.widths)
        pad = b - n
        host = self._staging[:, :b]
        host[0, :n], host[0, n:] = torch.as_tensor(tokens), self.pad_id
        host[1, :n], host[1, n:] = torch.as_tensor(lens), 0
        host[2, :n], host[2, n:] = host[1, :n], self.batch.trash  # padding rows write to the trash column
        self.inputs.copy_(self._staging, non_blocking=True)  # whole (contiguous, pinned): one async copy
        self.steps += 1
        if (b, w) in self.graphs:
            graph, logits = self.graphs[(b, w)]
            graph.replay()
        else:
            logits = self._run(b, w)
        return logits[:n] if pad else logits

    def _run(self, b: int, w: int) -> torch.Tensor:
        """The step at bucket (b, w), reading only the static tensors: what a graph captures."""
        plan = self._plans[b]
        plan.width = w
        self.batch.plan = plan
        ids, pos = self.inputs[0, :b].view(b, 1), self.inputs[1, :b].view(b, 1)
        return self.forward(ids, slot_mask(pos, w, self.dtype), pos, self.batch.cache)

    # -- sampling ----------------------------------------------------------------------------------

    def sample(self, logits: torch.Tensor, rows: Sequence[Row]) -> tuple[list[int], list[float] | None]:
        """Each row's next token (and its log-prob where the row asked), chosen on the device; one
        host transfer. A sampled row draws its uniform number from its own generator, as the eager
        path's `sample_next` does, so a seeded sample is the same on either path."""
        params = [r.params for r in rows]
        sampled = [b for b, p in enumerate(params) if p.temperature >= GREEDY_BELOW]
        u = temps = top_p = None
        if sampled:
            drawn = torch.zeros(len(rows))
            drawn[sampled] = torch.stack([torch.rand((), generator=rows[b].gen) for b in sampled])
            host = torch.tensor([[p.temperature for p in params], [p.top_p for p in params]])
            both = torch.cat([drawn.view(1, -1), host]).to(logits.device, non_blocking=True)
            u, temps, top_p = both[0], both[1], both[2]
        picked = sample_on_device(logits, temps, top_p, u)
        if not any(p.logprobs for p in params):
            return picked.tolist(), None
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, picked.view(-1, 1)).squeeze(-1)
        out = torch.stack([picked.double(), logp.double()]).cpu()  # the one transfer
        return out[0].long().tolist(), out[1].float().tolist()

    # -- capture -----------------------------------------------------------------------------------

    def capture(self) -> None:
        """Warm every bucket up on a side stream, then capture one graph per (batch, columns) bucket,
        largest first, sharing one memory pool; logs the time and memory it took. A failed capture
        leaves the static step running without graphs."""
        torch.cuda.synchronize(self.device)
        start, before = time.perf_counter(), torch.cuda.memory_allocated(self.device)
        keys = [(b, w) for b in reversed(self.buckets) for w in reversed(self.widths)]
        self.inputs[0].fill_(self.pad_id)
        self.inputs[1].zero_()
        self.inputs[2].fill_(self.batch.trash)
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for b, w in keys:
                    for _ in range(2):
                        self._run(b, w)
            torch.cuda.current_stream(self.device).wait_stream(side)
            pool = torch.cuda.graph_pool_handle()
            for b, w in keys:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):  # others may run
                    logits = self._run(b, w)
                self.graphs[(b, w)] = (graph, logits)
        except Exception as e:  # noqa: BLE001 - the static step still works without graphs
            self.graphs.clear()
            log.warning("CUDA graph capture failed (%s: %s); decoding with the static step, no graphs",
                        type(e).__name__, e)
            return
        torch.cuda.synchronize(self.device)
        log.info("captured %d CUDA graphs (batch buckets %s x column buckets %s) in %.2f s; graphs %.1f MiB, "
                 "KV buffers %.1f MiB", len(self.graphs), self.buckets, self.widths, time.perf_counter() - start,
                 (torch.cuda.memory_allocated(self.device) - before) / 2**20, self.kv_bytes / 2**20)


def sample_on_device(logits: torch.Tensor, temps: torch.Tensor | None, top_p: torch.Tensor | None,
                     u: torch.Tensor | None) -> torch.Tensor:
    """One token id per row of `logits` [rows, vocab], on its device. Rows whose temperature is below
    GREEDY_BELOW (all rows when `temps` is None) take the argmax; the others sample from the nucleus
    `top_p` of softmax(logits / temperature) at their uniform number `u`: `sample_next`'s arithmetic,
    row for row."""
    logits = logits.float()
    choice = logits.argmax(dim=-1)
    if temps is None:
        return choice
    sampled = temps >= GREEDY_BELOW
    probs = torch.softmax(logits / torch.where(sampled, temps, 1.0)[:, None], dim=-1)
    sorted_p, order = probs.sort(dim=-1, descending=True)
    cum = sorted_p.cumsum(dim=-1)
    sorted_p = torch.where(cum - sorted_p < top_p[:, None], sorted_p, torch.zeros_like(sorted_p))  # nucleus
    cum = sorted_p.cumsum(dim=-1)
    pick = torch.searchsorted(cum, (u * cum[:, -1])[:, None]).clamp(max=cum.shape[-1] - 1)
    return torch.where(sampled, order.gather(-1, pick).squeeze(-1), choice)
