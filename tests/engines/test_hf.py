"""The embedded engine on the shipped model: real tokenizer, real weights, real batching."""

import asyncio

import pytest

from app.engines.base import PromptTooLongError, SamplingParams
from app.engines.hf import HFEngine, ModelLoadError
from app.tasks import synthetic


def conv(q):
    return [{"role": "user", "content": q}]


QUESTIONS = [p.question for p in synthetic.problems(11, 12, synthetic.LEVELS["medium"])]


async def test_generates_a_solution(engine):
    p = synthetic.problems(3, 1)[0]
    [[c]] = await engine.generate([conv(p.question)], SamplingParams(max_tokens=120))
    assert c.finish_reason == "stop" and "The answer is" in c.text
    assert c.prompt_tokens == len(engine.encode(conv(p.question)))
    assert c.completion_tokens == len(engine.tokenizer(c.text, add_special_tokens=False)["input_ids"]) + 1  # + EOS


async def test_batched_greedy_equals_one_at_a_time(engine):
    params = SamplingParams(max_tokens=120)
    alone = [(await engine.generate([conv(q)], params))[0][0].text for q in QUESTIONS]
    together = [r.text for [r] in await asyncio.gather(*[
        _one(engine, q, params) for q in QUESTIONS])]
    assert together == alone
    assert max(engine.batch_sizes[-len(QUESTIONS):]) > 1  # they did share batches


async def _one(engine, q, params):
    return (await engine.generate([conv(q)], params))[0]


async def test_seeded_sampling_is_reproducible_and_independent_of_batch(engine):
    params = SamplingParams(temperature=1.5, max_tokens=60, seed=123, n=3)
    hard = synthetic.problems(11, 1, synthetic.LEVELS["expert"])[0].question  # two-digit products: samples vary
    a = await engine.generate([conv(hard)], params)
    b, _ = await asyncio.gather(engine.generate([conv(hard)], params),
                                engine.generate([conv(QUESTIONS[1])], params))
    assert [c.text for c in a[0]] == [c.text for c in b[0]]
    assert len({c.text for c in a[0]}) > 1  # the n samples differ from one another


async def test_max_tokens_and_stop_strings(engine):
    [[c]] = await engine.generate([conv(QUESTIONS[0])], SamplingParams(max_tokens=5))
    assert c.finish_reason == "length" and c.completion_tokens == 5
    [[c]] = await engine.generate([conv(QUESTIONS[0])], SamplingParams(max_tokens=120, stop=("=",)))
    assert c.finish_reason == "stop" and "=" not in c.text and c.text


async def test_deltas_rebuild_the_text(engine):
    parts = {}
    res = await engine.generate([conv(q) for q in QUESTIONS[:3]], SamplingParams(max_tokens=120, n=2, temperature=1, seed=1),
                                on_delta=lambda i, j, t: parts.setdefault((i, j), []).append(t))
    await asyncio.sleep(0)  # deltas are delivered through the event loop
    for i, samples in enumerate(res):
        for j, c in enumerate(samples):
            assert "".join(parts[(i, j)]) == c.text


async def test_prompt_longer_than_context_is_refused(engine):
    long_q = "Sam has 3 apples. " * 2000
    with pytest.raises(PromptTooLongError, match="context"):
        await engine.generate([conv(long_q)], SamplingParams())


async def test_cancelled_request_frees_its_rows(engine):
    task = asyncio.create_task(engine.generate([conv(QUESTIONS[0])], SamplingParams(max_tokens=400, temperature=1)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the engine still serves afterwards
    [[c]] = await engine.generate([conv(QUESTIONS[1])], SamplingParams(max_tokens=120))
    assert "The answer is" in c.text


async def test_many_concurrent_callers_get_their_own_answers(engine):
    probs = synthetic.problems(21, 24, synthetic.LEVELS["easy"])
    res = await asyncio.gather(*[_one(engine, p.question, SamplingParams(max_tokens=120)) for p in probs])
    right = sum(f"The answer is {p.answer}." in r[0].text for p, r in zip(probs, res))
    assert right >= 22  # each caller gets the answer to its own question


def test_not_a_model_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a model directory"):
        HFEngine(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="cannot load"):
        HFEngine(tmp_path)


async def test_engine_survives_a_failed_batch(engine, monkeypatch):
    from app.engines.base import EngineError

    real = engine.model.forward
    calls = {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated kernel failure")
        return real(*a, **kw)

    monkeypatch.setattr(engine.model, "forward", flaky)
    with pytest.raises(EngineError, match="simulated kernel failure"):
        await engine.generate([conv(QUESTIONS[0])], SamplingParams(max_tokens=20))
    [[c]] = await engine.generate([conv(QUESTIONS[0])], SamplingParams(max_tokens=120))
    assert "The answer is" in c.text and await engine.health()
