"""Prompt-lookup speculation in the embedded engine (app/engines/speculative.py) on the shipped model:
greedy text is token for token the same with and without it (refinements of every level, a batch
mixing long and short drafts with stop strings and budgets, the static step), seeded samples repeat,
sampled outputs keep the model's distribution (a chi-square test that a wrong acceptance rule
fails), log-probs and `confident` stops agree, and the counts by turn reach the metrics.

    pytest tests/engines/test_speculative.py
    python scripts/spec_identity.py --per-level 300     # the larger count (docs/results/)
"""

import asyncio
import collections

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

import app.engines.speculative as speculative
from app.answers.checker import get_checker
from app.config import Settings
from app.engines.base import SamplingParams
from app.engines.hf import HFEngine
from app.engines.speculative import Drafter, SpecConfig
from app.metrics import spec_families
from app.refine.loop import refine
from app.refine.types import RefineConfig
from app.tasks import synthetic

CHECK = get_checker("synthetic")
FEEDBACK = "The answer is incorrect. Please try again. Here's the question: {q}"


@pytest.fixture(scope="module")
def engine(model_path):
    e = HFEngine(model_path, max_batch_size=16, speculative=SpecConfig(enabled=True, tokens=8))
    yield e
    asyncio.run(e.aclose())


def conv(q):
    return [{"role": "user", "content": q}]


def turns(result):
    return [(t.text, t.samples[0].completion_tokens, t.samples[0].finish_reason) for t in result.turns]


async def refinements(engine, questions, spec: bool, max_turns=5, **config):
    cfg = RefineConfig(max_turns=max_turns, sampling=SamplingParams(max_tokens=160, speculative=spec), **config)
    return await asyncio.gather(*[refine(engine, q, CHECK, cfg) for q in questions])


@pytest.fixture
def verify_drafts(engine, monkeypatch):
    """Each verify pass's draft lengths, row by row."""
    seen, real = [], engine.spec._verify

    def spy(eng, batch, tokens, drafts):
        seen.append([len(d) for d in drafts])
        return real(eng, batch, tokens, drafts)

    monkeypatch.setattr(engine.spec, "_verify", spy)
    return seen


def test_drafter_copies_what_followed_the_latest_longest_match():
    d = Drafter(SpecConfig(enabled=True, ngram_min=1, ngram_max=3), [5, 6, 7, 8, 9, 5, 6, 7, 1, 2])
    assert d.propose([5, 6, 7], 3) == [1, 2, 5]  # "5 6 7" last seen before 1, 2 (not 8, 9)
    assert d.propose([5, 6, 7, 1], 8) == [2, 5, 6, 7, 1]  # up to the end of the context
    assert d.propose([5, 6, 7, 1, 4], 8) == []  # "4" never seen before
    assert d.propose([5, 6, 7, 1, 4, 9], 2) == [5, 6]  # a 1-gram: 9 was followed by 5
    d = Drafter(SpecConfig(enabled=True, ngram_min=2, ngram_max=2), [1, 2, 3, 4, 2, 9])
    assert d.propose([], 4) == []  # "2 9" unseen, and no 1-grams at ngram_min 2
    with pytest.raises(ValueError, match="ngram_min <= ngram_max"):
        SpecConfig(ngram_min=3, ngram_max=2)


async def test_greedy_refinements_are_token_identical_at_every_level(engine):
    questions = [p.question for level in synthetic.LEVELS.values()
                 for p in synthetic.problems(2718, 10, level, "test")]
    plain = await refinements(engine, questions, False)
    before = engine.spec.stats.snapshot()
    spec = await refinements(engine, questions, True)
    assert [turns(r) for r in spec] == [turns(r) for r in plain]
    after = engine.spec.stats.snapshot()
    for k in range(1, 6):  # counted by turn; later turns accept most of what they draft
        assert after[k].drafted > before.get(k, speculative.TurnStats()).drafted
    assert after[4].accepted > 0.6 * after[4].drafted


async def test_a_batch_of_long_and_short_drafts_with_stops_and_budgets_is_identical(engine, verify_drafts,
                                                                                   monkeypatch):
    """Turn-2 prompts (the previous attempt in context: long drafts) beside first turns (short or no
    drafts), with stop strings, budgets that end mid-draft, several samples and log-probs, in one batch.
    The idle engine gathers arrivals for 1 s, so that the nine calls start as one batch even when the
    machine is busy (their prompts are encoded in threads, and may arrive apart)."""
    monkeypatch.setattr(engine, "batch_wait_s", 1.0)
    probs = synthetic.problems(99, 6, synthetic.LEVELS["hard"], "test")
    firsts = await asyncio.gather(*[engine.generate([conv(p.question)], SamplingParams(max_tokens=160))
                                    for p in probs])
    verify_drafts.clear()
    second = [[*conv(p.question), {"role": "assistant", "content": c[0][0].text},
               {"role": "user", "content": FEEDBACK.format(q=p.question)}] for p, c in zip(probs, firsts)]
    calls = [(second[0], dict(max_tokens=160, logprobs=True)), (second[1], dict(max_tokens=11)),
             (second[2], dict(max_tokens=160, stop=("+",))), (second[3], dict(max_tokens=27, stop=("answer",))),
             (second[4], dict(max_tokens=160, n=3)), (second[5], dict(max_tokens=4)),
             (conv(probs[0].question), dict(max_tokens=160, stop=(". ",))),
             (conv(probs[1].question), dict(max_tokens=9, logprobs=True)),
             (conv(probs[2].question), dict(max_tokens=160))]

    async def run(spec):
        out = await asyncio.gather(*[engine.generate([c], SamplingParams(speculative=spec, **kw)) for c, kw in calls])
        return [[(s.text, s.completion_tokens, s.finish_reason, s.token_texts) for s in o[0]] for o in out]

    plain = await run(False)
    assert not verify_drafts
    spec = await run(True)
    assert spec == plain
    assert {"length", "stop"} <= {s[2] for o in spec for s in o}
    assert spec[1][0][1] == 11 and spec[5][0][1] == 4  # budgets hold to the token
    mixed = [lens for lens in verify_drafts if len(set(lens)) > 2 and 0 in lens and len(lens) >= 8]
    assert mixed, verify_drafts[:5]  # one pass verified long, short and no drafts together


async def test_a_crowded_batch_drafts_nothing_and_the_text_is_the_same(model_path, engine):
    """RISE_SPECULATIVE_MAX_BATCH: a step with more sequences than the limit runs without drafts;
    once the batch thins out below it, drafting resumes. Greedy text as without speculation."""
    limited = HFEngine(model_path, max_batch_size=16, speculative=SpecConfig(enabled=True, tokens=8, max_batch=2))
    seen, real = [], limited.spec._verify

    def spy(eng, batch, tokens, drafts):
        seen.append(len(drafts))
        return real(eng, batch, tokens, drafts)

    limited.spec._verify = spy
    try:
        questions = [p.question for p in synthetic.problems(17, 6, synthetic.LEVELS["hard"], "test")]
        plain = await refinements(engine, questions, False, max_turns=3)
        spec = await refinements(limited, questions, True, max_turns=3)
        assert [turns(r) for r in spec] == [turns(r) for r in plain]
        assert seen and max(seen) <= 2, seen  # verify passes only once at most 2 rows were left
    finally:
        await limited.aclose()


def test_static_step_with_speculation_gives_the_eager_text(model_path, engine):
    """The static-shape step (CUDA graphs on a GPU) runs the steps without drafts; verify steps run
    eagerly on its buffers: the same greedy text as the plain eager step."""
    questions = [p.question for p in synthetic.problems(31, 12, synthetic.LEVELS["expert"], "test")]
    plain = asyncio.run(refinements(engine, questions, False, max_turns=3))
    static = HFEngine(model_path, max_batch_size=16, static_decode=True, speculative=SpecConfig(enabled=True))
    try:
        spec = asyncio.run(refinements(static, questions, True, max_turns=3))
        assert static._static is not None and static._static.steps > 0 and static.spec.stats.snapshot()
    finally:
        asyncio.run(static.aclose())
    assert [turns(r) for r in spec] == [turns(r) for r in plain]


async def test_logprobs_and_confident_stops_agree(engine):
    questions = [p.question for p in synthetic.problems(5, 8, synthetic.LEVELS["medium"], "test")]
    plain = await refinements(engine, questions, False, early_stop="confident", aggregation="confidence")
    spec = await refinements(engine, questions, True, early_stop="confident", aggregation="confidence")
    for a, b in zip(plain, spec):
        assert (b.stop_reason, b.final_answer, turns(b)) == (a.stop_reason, a.final_answer, turns(a))
        for ta, tb in zip(a.turns, b.turns):
            assert tb.samples[0].token_logprobs == pytest.approx(ta.samples[0].token_logprobs, abs=1e-4)
            assert tb.samples[0].confidence == pytest.approx(ta.samples[0].confidence, abs=1e-5)
    assert {r.stop_reason for r in spec} >= {"confident"}


# -- sampling ------------------------------------------------------------------------------------


def chi_square_p(a: collections.Counter, b: collections.Counter, least: int = 5) -> float:
    """The p-value of Pearson's chi-square test that two samples come from one distribution
    (categories with fewer than 2 * `least` counts pooled); survival function of chi2 by
    torch.special.gammaincc (the regularised upper incomplete gamma)."""
    keys = set(a) | set(b)
    big = [k for k in keys if a[k] + b[k] >= 2 * least]
    cells = [(a[k], b[k]) for k in big]
    rest = [k for k in keys if k not in big]
    if rest:
        cells.append((sum(a[k] for k in rest), sum(b[k] for k in rest)))
    na, nb = sum(a.values()), sum(b.values())
    stat = sum((x - (x + y) * na / (na + nb)) ** 2 / ((x + y) * na / (na + nb))
               + (y - (x + y) * nb / (na + nb)) ** 2 / ((x + y) * nb / (na + nb)) for x, y in cells)
    dof = len(cells) - 1
    assert dof >= 2, cells
    return float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                         torch.tensor(stat / 2, dtype=torch.float64)))


@pytest.fixture(scope="module")
def second_turn(engine):
    """A turn-2 conversation (the model's first attempt in it) and that attempt's tokens."""
    q = synthetic.problems(11, 1, synthetic.LEVELS["expert"], "test")[0].question
    [[first]] = asyncio.run(engine.generate([conv(q)], SamplingParams(max_tokens=160)))
    prompt = [*conv(q), {"role": "assistant", "content": first.text}, {"role": "user", "content": FEEDBACK.format(q=q)}]
    return prompt, engine.tokenizer(first.text, add_special_tokens=False)["input_ids"]


def samples(engine, prompt, spec: bool, n=1000, seed=0) -> list[tuple[int, ...]]:
    """The tokens of `n` seeded samples (temperature 3, top_p 0.99, 6 tokens: drafts accepted about half the time)."""
    params = SamplingParams(temperature=3.0, top_p=0.99, max_tokens=6, n=n, seed=seed, speculative=spec)
    [out] = asyncio.run(engine.generate([prompt], params))
    return [tuple(engine.tokenizer(s.text, add_special_tokens=False)["input_ids"]) for s in out]


def agreement(drawn: list[tuple[int, ...]], reference: tuple[int, ...]) -> collections.Counter:
    """How many leading tokens of each sample agree with `reference`: where it first leaves it."""
    return collections.Counter(next((i for i, (x, y) in enumerate(zip(s, reference)) if x != y), min(len(s), len(reference)))
                               for s in drawn)


@pytest.fixture(scope="module")
def wide(model_path):
    """The same engine with room for 128 sequences at once: the 1,000-sample runs take fewer steps."""
    e = HFEngine(model_path, max_batch_size=128, speculative=SpecConfig(enabled=True, tokens=8))
    yield e
    asyncio.run(e.aclose())


def test_sampled_outputs_keep_the_distribution_and_a_wrong_rule_fails(wide, second_turn, monkeypatch):
    engine = wide
    prompt, _ = second_turn
    drawn = samples(engine, prompt, False, seed=0)
    mode = collections.Counter(drawn).most_common(1)[0][0]  # the likeliest text, mostly what the drafts propose
    plain = agreement(drawn, mode)
    before = engine.spec.stats.snapshot().get(0, speculative.TurnStats())
    spec = agreement(samples(engine, prompt, True, seed=50_000), mode)
    drafted = engine.spec.stats.snapshot()[0]
    assert drafted.drafted - before.drafted > 1000 and drafted.accepted > before.accepted  # the rule was exercised
    assert chi_square_p(plain, spec) > 0.01, (plain, spec)

    # wrong: after a rejected draft x, draw from p with x still in it (x gets p + (1 - p) p)
    monkeypatch.setattr(speculative, "sample_without",
                        lambda logits, params, gen, exclude: int(speculative.sample_next(logits.view(1, -1), [params], [gen])))
    kept = agreement(samples(engine, prompt, True, seed=50_000), mode)
    monkeypatch.undo()
    assert chi_square_p(plain, kept) < 1e-3, (plain, kept)

    # wrong: accept x with probability sqrt(p(x))
    monkeypatch.setattr(engine.spec, "accept", lambda p, gen: float(torch.rand((), generator=gen)) < p ** 0.5)
    eager = agreement(samples(engine, prompt, True, seed=50_000), mode)
    assert chi_square_p(plain, eager) < 1e-3, (plain, eager)


def test_seeded_samples_repeat(engine, second_turn):
    prompt, _ = second_turn
    params = SamplingParams(temperature=2.0, max_tokens=40, n=6, seed=7, speculative=True)
    [a] = asyncio.run(engine.generate([prompt], params))
    [b] = asyncio.run(engine.generate([prompt], params))
    assert [s.text for s in a] == [s.text for s in b] and len({s.text for s in a}) > 1


# -- switch and metrics ----------------------------------------------------------------------------


def test_the_switch_and_its_sizes_come_from_settings(monkeypatch):
    monkeypatch.setenv("RISE_SPECULATIVE", "false")
    monkeypatch.setenv("RISE_SPECULATIVE_TOKENS", "5")
    assert Settings().speculation() == SpecConfig(enabled=False, tokens=5, ngram_min=2, ngram_max=4, max_batch=4)
    monkeypatch.setenv("RISE_SPECULATIVE_MAX_BATCH", "0")
    assert Settings().speculation().max_batch == 0
    monkeypatch.delenv("RISE_SPECULATIVE")  # the default: on for the embedded engine; vLLM's only when asked for
    assert Settings().speculation().enabled and not Settings(engine="vllm").speculation().enabled
    monkeypatch.setenv("RISE_SPECULATIVE", "true")
    assert Settings(engine="vllm").speculation().enabled
    monkeypatch.setenv("RISE_SPECULATIVE_NGRAM_MIN", "5")
    with pytest.raises(ValueError, match="RISE_SPECULATIVE_NGRAM_MIN \\(5\\) must not exceed"):
        Settings()


def test_counts_by_turn_become_metric_families():
    stats = speculative.SpecStats()
    stats.add(1, 8, 1)
    stats.add(2, 8, 7)
    stats.add(12, 8, 8)
    stats.add(11, 4, 4)
    stats.add(0, 3, 0)
    families = {f.name: {s.labels["turn"]: s.value for s in f.samples} for f in spec_families("m", stats.snapshot())}
    assert families["rise_spec_draft_tokens"] == {"1": 8, "2": 8, "10+": 12, "none": 3}
    assert families["rise_spec_accepted_tokens"] == {"1": 1, "2": 7, "10+": 12, "none": 0}
    assert families["rise_spec_verify_rows"] == {"1": 1, "2": 1, "10+": 2, "none": 1}


def spec_counts(server: str) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{server}/metrics", timeout=30).text
    return {(f.name, s.labels["turn"]): s.value for f in text_string_to_metric_families(text)
            if f.name.startswith("rise_spec_") for s in f.samples if s.name.endswith("_total")}


def test_refine_api_turns_are_the_same_with_and_without_speculation(server):
    """Through /v1/refine on a real server: the request's `speculative` switches it; the counts by
    turn reach /metrics; a wrong type is a 400 naming the field."""
    def turns_of(question, spec):
        r = httpx.post(f"{server}/v1/refine", json={"question": question, "max_turns": 3, "speculative": spec},
                       timeout=120)
        assert r.status_code == 200, r.text
        return [(t["text"], t["completion_tokens"]) for t in r.json()["turns"]]

    before = spec_counts(server)
    for p in synthetic.problems(8, 4, synthetic.LEVELS["hard"], "test"):
        plain = turns_of(p.question, False)
        assert turns_of(p.question, True) == plain
    after = spec_counts(server)
    for turn in ("1", "2", "3"):
        assert after[("rise_spec_draft_tokens", turn)] > before.get(("rise_spec_draft_tokens", turn), 0)
    assert after[("rise_spec_accepted_tokens", "3")] > before.get(("rise_spec_accepted_tokens", "3"), 0)
    bad = httpx.post(f"{server}/v1/refine", json={"question": "Sam has 3 apples.", "speculative": "yes"}, timeout=30)
    assert bad.status_code == 400 and "speculative" in bad.text
