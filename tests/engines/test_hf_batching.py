"""Continuous batching and the prefix cache of the embedded engine, on the shipped model:
cached and uncached generation agree, joins and leaves never mix rows up, memory stays bounded."""

import asyncio
from contextlib import contextmanager

import pytest
import torch

from app.answers.checker import get_checker
from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.engines.hf_batch import RunningBatch, prefill_groups
from app.refine.loop import refine
from app.refine.types import RefineConfig
from app.tasks import synthetic

EXPERT = [p.question for p in synthetic.problems(77, 6, synthetic.LEVELS["expert"], "test")]


@pytest.fixture(scope="module")
def engines(model_path):
    cached, uncached = HFEngine(model_path, max_batch_size=16), HFEngine(model_path, prefix_cache_mb=0)
    yield cached, uncached
    for e in (cached, uncached):
        asyncio.run(e.aclose())


def conv(q):
    return [{"role": "user", "content": q}]


@contextmanager
def forward_shapes(engine):
    """The input_ids shape of every model call made inside the block."""
    seen, real = [], engine.model.forward

    def spy(*a, **kw):
        seen.append(tuple(kw["input_ids"].shape))
        return real(*a, **kw)

    engine.model.forward = spy
    try:
        yield seen
    finally:
        del engine.model.forward


def texts(result):
    return [t.text for t in result.turns]


@pytest.mark.parametrize("window", ["full", "last"])
async def test_cached_and_uncached_refinements_are_identical(engines, window):
    cached, uncached = engines
    config = RefineConfig(max_turns=4, window=window, sampling=SamplingParams(max_tokens=160))
    checker = get_checker("synthetic")
    before = cached.prefix_cache.stats.hit_tokens
    with_cache = await asyncio.gather(*[refine(cached, q, checker, config) for q in EXPERT])
    without = [await refine(uncached, q, checker, config) for q in EXPERT]  # one at a time, no reuse
    assert [texts(r) for r in with_cache] == [texts(r) for r in without]
    assert cached.prefix_cache.stats.hit_tokens - before > 0 and uncached.prefix_cache.stats.hit_tokens == 0


async def test_full_window_turn_prefills_only_the_new_tokens(engines):
    cached, _ = engines
    # without speculation: its verify passes would be model calls of several tokens too
    config = RefineConfig(max_turns=3, window="full", sampling=SamplingParams(max_tokens=160, speculative=False))
    q = synthetic.problems(78, 1, synthetic.LEVELS["expert"], "test")[0].question
    with forward_shapes(cached) as seen:
        result = await refine(cached, q, get_checker("synthetic"), config)
    prefills = [s for s in seen if s[1] > 1]
    assert len(prefills) == len(result.turns)
    for turn, (_, width) in zip(result.turns[1:], prefills[1:]):
        # turn k's prompt = turn k-1's prompt + answer + feedback: only the tail is run again
        assert width < turn.samples[0].prompt_tokens - result.turns[0].samples[0].prompt_tokens + 8


async def test_parallel_samples_share_one_prefill(engines):
    cached, _ = engines
    with forward_shapes(cached) as seen:
        [samples] = await cached.generate([conv(EXPERT[0] + " ")], SamplingParams(n=4, temperature=3.0, seed=5))
    assert len(samples) == 4 and len({s.text for s in samples}) > 1
    assert seen[0][0] == 1 and seen[1][0] == 4  # one row prefilled, four rows decoded


async def test_a_short_request_joins_and_leaves_while_a_long_one_runs(engines, monkeypatch):
    cached, _ = engines
    monkeypatch.setattr(cached, "eos_ids", set())  # only the token budget ends a sequence
    long = asyncio.create_task(cached.generate([conv("Say many numbers.")], SamplingParams(max_tokens=300)))
    await asyncio.sleep(0.2)  # the long row is decoding
    [[short]] = await cached.generate([conv(EXPERT[1])], SamplingParams(max_tokens=20))
    assert short.finish_reason == "length" and short.completion_tokens == 20
    assert not long.done()  # the short one joined the running batch and left it first
    [[c]] = await long
    assert c.finish_reason == "length" and c.completion_tokens == 300


async def test_staggered_callers_get_exactly_their_own_greedy_answers(engines):
    cached, _ = engines
    problems = synthetic.problems(79, 20, synthetic.LEVELS["hard"], "test")
    alone = [(await cached.generate([conv(p.question)], SamplingParams(max_tokens=160)))[0][0].text for p in problems]
    cached.prefix_cache.clear()

    async def late(i, p):
        await asyncio.sleep(0.01 * i)  # arrivals spread over the decode steps of earlier ones
        [[c]] = await cached.generate([conv(p.question)], SamplingParams(max_tokens=160))
        return c.text

    together = await asyncio.gather(*[late(i, p) for i, p in enumerate(problems)])
    assert together == alone
    assert len(set(cached.batch_sizes[-20:])) > 2  # the batch grew and shrank as rows came and went


async def test_a_tiny_cache_evicts_and_stays_within_its_bound(model_path):
    engine = HFEngine(model_path, prefix_cache_mb=4)  # room for one or two conversations (12 KiB a token)
    try:
        config = RefineConfig(max_turns=3, window="full", sampling=SamplingParams(max_tokens=160))
        results = await asyncio.gather(*[refine(engine, q, get_checker("synthetic"), config) for q in EXPERT])
        cache = engine.prefix_cache
        assert cache.stats.evictions > 0 and 0 < cache.bytes <= cache.max_bytes
        assert all(r.turns for r in results)
    finally:
        await engine.aclose()


def test_prefill_groups_bound_padding_and_keep_order():
    fresh = [300, 290, 200, 150, 40, 39, 10, 1]
    groups = prefill_groups(fresh)
    assert [u for g in groups for u in g] == list(range(len(fresh)))  # every prompt once, in order
    assert len(groups) > 1
    for g in groups:
        slots = len(g) * fresh[g[0]]
        assert slots - sum(fresh[u] for u in g) <= max(0.25 * slots, 64)
    assert prefill_groups([7, 7, 7]) == [range(0, 3)] and prefill_groups([]) == []


def test_leaving_rows_are_replaced_by_the_last_ones_without_touching_the_others():
    batch = RunningBatch(slots=16, shapes=[(2, 4)] * 3, dtype=torch.float32, device=torch.device("cpu"), max_columns=64)
    rows, lens = [f"row{r}" for r in range(5)], [3, 5, 7, 9, 4]
    for r, n in enumerate(lens):  # row r's KV holds the value r in its first n columns
        batch.reserve(n, r + 1)  # the buffers grow (slots and columns), keeping what earlier slots hold
        batch.write_prefix(r, [(torch.full((2, n, 4), float(r)), torch.full((2, n, 4), -float(r)))] * 3, n)
    assert batch.k[0].shape[0] == 8  # slots are allocated as rows need them, not all up front
    batch.extend(rows, lens, torch.arange(5.0).view(5, 1))
    order = batch.remove([1, 3])
    assert order == [0, 4, 2] and batch.rows == ["row0", "row4", "row2"] and batch.lens == [3, 4, 7]
    assert batch.logits.view(-1).tolist() == [0.0, 4.0, 2.0]
    for now, before in enumerate(order):
        n = batch.lens[now]
        for k, v in zip(batch.k, batch.v):
            assert bool((k[now, :, :n] == before).all()) and bool((v[now, :, :n] == -before).all())
