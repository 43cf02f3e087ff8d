"""The static-shape decode step (app/engines/cuda_graphs.py) on the CPU, without graph capture: the
same greedy text as the eager path on a refinement load, equal log-probs, the same seeded samples,
and device sampling that picks what `sample_next` picks.

    pytest tests/engines/test_cuda_graphs.py
"""

import asyncio

import pytest
import torch

from app.answers.checker import get_checker
from app.config import Settings
from app.engines.base import SamplingParams
from app.engines.cuda_graphs import batch_buckets, bucket, column_buckets, sample_on_device
from app.engines.hf import HFEngine
from app.engines.sampling import row_generator, sample_next, token_logprobs
from app.refine.loop import refine
from app.refine.types import RefineConfig
from app.tasks import synthetic


def refinement_texts(engine, n: int, turns: int = 5, seed: int = 4321) -> list[list[str]]:
    """Every turn's text of `n` greedy, no-oracle refinements of held-out expert problems, run
    concurrently (so the engine batches them, joining and leaving at every bucket size)."""
    questions = [p.question for p in synthetic.problems(seed, n, synthetic.LEVELS["expert"], "test")]
    config = RefineConfig(max_turns=turns, sampling=SamplingParams(max_tokens=160))
    checker = get_checker("synthetic")

    async def run():
        results = await asyncio.gather(*[refine(engine, q, checker, config) for q in questions])
        return [[t.text for t in r.turns] for r in results]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def static(model_path):
    e = HFEngine(model_path, max_batch_size=16, static_decode=True)
    yield e
    asyncio.run(e.aclose())


def test_buckets():
    assert batch_buckets(32) == [1, 2, 4, 8, 16, 32]
    assert batch_buckets(48) == [1, 2, 4, 8, 16, 32, 64]
    assert batch_buckets(100) == [1, 2, 4, 8, 16, 32, 64, 128]
    assert batch_buckets(1) == [1]
    assert column_buckets(1024) == [128, 256, 512, 1024]
    assert column_buckets(1000) == [128, 256, 512, 1000]
    assert column_buckets(100) == [100]
    assert bucket(3, [1, 2, 4, 8]) == 4 and bucket(8, [1, 2, 4, 8]) == 8
    with pytest.raises(ValueError, match="exceeds the largest bucket 8"):
        bucket(9, [1, 2, 4, 8])


def test_the_switch_defaults_on_and_only_takes_effect_on_cuda(model_path, monkeypatch):
    assert Settings().cuda_graphs is True
    monkeypatch.setenv("RISE_CUDA_GRAPHS", "false")
    assert Settings().cuda_graphs is False
    e = HFEngine(model_path, max_batch_size=4, device="cpu")  # graphs asked for, but no CUDA: eager
    try:
        [[c]] = asyncio.run(e.generate([[{"role": "user", "content": "Sam has 3 apples. He buys 4 more."}]],
                                       SamplingParams(max_tokens=40)))
        assert c.text and e._static is None
    finally:
        asyncio.run(e.aclose())


def test_static_step_gives_the_eager_paths_greedy_text_on_a_refinement_load(engine, static):
    eager = refinement_texts(engine, 24)
    assert refinement_texts(static, 24) == eager
    assert static._static is not None and static._static.steps > 0 and not static._static.graphs
    assert len(set(static.batch_sizes)) > 1  # the load ran at several batch sizes (buckets, padding rows)


async def test_static_step_logprobs_and_seeded_samples_equal_the_eager_paths(engine, static):
    convs = [[{"role": "user", "content": p.question}]
             for p in synthetic.problems(7, 5, synthetic.LEVELS["expert"], "test")]
    greedy = SamplingParams(max_tokens=80, logprobs=True)
    sampled = SamplingParams(max_tokens=80, temperature=0.9, top_p=0.9, seed=11, n=2)
    for params in (greedy, sampled):
        want, got = await engine.generate(convs, params), await static.generate(convs, params)
        assert [[c.text for c in p] for p in got] == [[c.text for c in p] for p in want]
    want, got = await engine.generate(convs, greedy), await static.generate(convs, greedy)
    for w, g in zip(want, got):
        assert g[0].token_texts == w[0].token_texts
        assert g[0].token_logprobs == pytest.approx(w[0].token_logprobs, abs=1e-4)


def test_device_sampling_picks_what_sample_next_picks():
    torch.manual_seed(0)
    logits = torch.randn(12, 438) * 3
    params = [SamplingParams(temperature=t, top_p=p) for t, p in
              [(0, 1), (0.7, 0.9), (1.3, 1.0), (1e-9, 0.5), (1.0, 0.3), (0.5, 0.95)] * 2]
    want = sample_next(logits, params, [row_generator(s) for s in range(12)])
    gens = [row_generator(s) for s in range(12)]
    sampled = [b for b, p in enumerate(params) if p.temperature >= 1e-5]
    u = torch.zeros(12)
    u[sampled] = torch.stack([torch.rand((), generator=gens[b]) for b in sampled])
    temps = torch.tensor([p.temperature for p in params])
    top_p = torch.tensor([p.top_p for p in params])
    got = sample_on_device(logits, temps, top_p, u)
    assert got.tolist() == want.tolist()
    assert sample_on_device(logits, None, None, None).tolist() == logits.argmax(-1).tolist()
    assert len(set(got[sampled].tolist())) > 1  # sampled rows are not all the argmax


def test_static_sample_returns_tokens_and_logprobs_in_one_transfer(static):
    from app.engines.hf_batch import Row

    torch.manual_seed(1)
    logits = torch.randn(5, 438)
    params = [SamplingParams(logprobs=True), SamplingParams(temperature=0.8, seed=3, logprobs=True)] * 2 + [SamplingParams()]
    rows = [Row(ids=[1], params=p, gen=row_generator(p.seed), deliver=print, emit=None, max_new=1) for p in params]
    tokens, logprobs = static._static.sample(logits, rows)
    want = sample_next(logits, params, [row_generator(p.seed) for p in params])
    assert tokens == want.tolist()
    assert logprobs == pytest.approx(token_logprobs(logits, want, [True] * 5), abs=1e-6)


def test_static_decode_stays_off_where_its_kv_buffers_would_not_fit(monkeypatch, caplog):
    from app.engines import cuda_graphs

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100 * 2**20, 80 * 2**30))  # 100 MiB free
    dec = cuda_graphs.static_decoder(None, [(8, 32)] * 6, torch.bfloat16, torch.device("cuda"), 1024, 64, 0, True)
    assert dec is None and "static decode off" in caplog.text and "384 MiB" in caplog.text  # 2 x 6 x 64 x 8 x 1025 x 32 x 2 bytes
