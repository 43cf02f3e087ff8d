"""LoRA adapters served beside the model (`rise serve --lora NAME=PATH`), driven with the official
openai client: /v1/models lists each adapter with its parent, a request's `model` picks the adapter
on chat, Responses and the native API, concurrent requests through two adapters and the base
(decoded in mixed batches) each get their own greedy output, equal to a server of that adapter's
merged weights alone, and the refinement metrics carry the adapter's name."""

import asyncio

import httpx
import openai
import pytest

from tests.lora import make_adapter
from tests.servers import start_server, stop_server

QUESTIONS = ["Ana has 68 marbles. She ends up with 26 times as many. Then she buys 91 more. How many marbles does "
             "Ana have now?",
             "Tom has 47 cards. He gives away 19. Then he ends up with 7 times as many. How many cards does Tom have now?"]
TWO_TURNS = {"rise": {"max_turns": 2}}


@pytest.fixture(scope="module")
def servers(tmp_path_factory, model_path):
    """The model with adapters a and b, and a server of each adapter's merged weights alone."""
    d = tmp_path_factory.mktemp("lora")
    for name, seed in (("a", 1), ("b", 2)):
        make_adapter(model_path, d / name, seed, merged=d / f"{name}-merged")
    procs, urls = [], {}
    try:
        for key, args in (("lora", ["--model", str(model_path), "--lora", f"a={d / 'a'}", "--lora", f"b={d / 'b'}"]),
                          ("a", ["--model", str(d / "a-merged"), "--model-name", "a"]),
                          ("b", ["--model", str(d / "b-merged"), "--model-name", "b"])):
            proc, url, _ = start_server(args=args)
            procs.append(proc)
            urls[key] = url
        yield urls
    finally:
        for proc in procs:
            stop_server(proc)


def _client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


async def _chat(client, model: str, question: str) -> tuple[str, str]:
    r = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                             temperature=0, max_tokens=60, extra_body=TWO_TURNS)
    assert r.model == model
    return r.choices[0].message.content, r.choices[0].message.model_extra["reasoning"]


def test_models_lists_each_adapter_with_its_parent(servers, model_path):
    models = openai.OpenAI(base_url=f"{servers['lora']}/v1", api_key="unused").models.list().data
    base = model_path.name
    assert [m.id for m in models] == [base, "a", "b"]
    assert [getattr(m, "parent", None) for m in models] == [None, base, base]


async def test_concurrent_requests_through_two_adapters_and_the_base_each_get_their_own_output(servers, model_path):
    base = model_path.name
    async with _client(servers["lora"]) as c, _client(servers["a"]) as ca, _client(servers["b"]) as cb:
        got = await asyncio.gather(*[_chat(c, m, q) for m in (base, "a", "b") for q in QUESTIONS])
        want = await asyncio.gather(*[_chat(c, base, q) for q in QUESTIONS], *[_chat(ca, "a", q) for q in QUESTIONS],
                                    *[_chat(cb, "b", q) for q in QUESTIONS])
    assert got == want
    assert got[2:4] != got[4:6] and got[0:2] != got[2:4]  # the adapters answer differently


async def test_responses_and_the_native_api_choose_the_adapter_by_model(servers):
    q = QUESTIONS[0]
    async with _client(servers["lora"]) as c, _client(servers["b"]) as cb:
        r, ref = await asyncio.gather(*[x.responses.create(model="b", input=q, temperature=0, extra_body=TWO_TURNS)
                                        for x in (c, cb)])
    assert r.model == "b" and r.output_text == ref.output_text
    native = [httpx.post(f"{url}/v1/refine", json={"question": q, "model": "a", "max_turns": 2, "temperature": 0},
                         timeout=60).json() for url in (servers["lora"], servers["a"])]
    assert native[0]["model"] == "a"
    assert [t["text"] for t in native[0]["turns"]] == [t["text"] for t in native[1]["turns"]]


def test_an_unknown_model_is_a_404_in_openais_shape(servers):
    c = openai.OpenAI(base_url=f"{servers['lora']}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as e:
        c.chat.completions.create(model="c", messages=[{"role": "user", "content": QUESTIONS[0]}])
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    assert "'a'" in e.value.body["message"] and "'b'" in e.value.body["message"]
    r = httpx.post(f"{servers['lora']}/v1/refine", json={"question": QUESTIONS[0], "model": "c"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_refinement_metrics_are_labelled_with_the_adapter(servers):
    c = openai.OpenAI(base_url=f"{servers['lora']}/v1", api_key="unused", max_retries=0)
    c.chat.completions.create(model="a", messages=[{"role": "user", "content": QUESTIONS[1]}], temperature=0,
                              max_tokens=40, extra_body={"rise": {"max_turns": 1}})
    text = httpx.get(f"{servers['lora']}/metrics").text
    line = next(x for x in text.splitlines()
                if x.startswith("rise_refinements_total{") and 'model_name="a"' in x and 'mode="self"' in x)
    assert float(line.rsplit(" ", 1)[1]) >= 1
    assert 'rise_refinements_total{mode="self",model_name="b"} ' in text  # exported from the start
