"""One temperature rule on every surface (docs/api.md "Temperature"), read back exactly from each
request's stored trace (`config.sampling.temperature`) on a real server with traces on: left out,
one draw per prompt is greedy (0) and several draws (samples_per_turn or n above 1) run at
RISE_SAMPLED_TEMPERATURE; a given temperature is kept; 0 with several draws is a 400 naming
`temperature`. Chat and the Responses API go through the official openai client.

    .venv/bin/pytest -q -n 0 tests/api/test_temperature_rule.py
"""

import httpx
import openai
import pytest

from tests.servers import start_server, stop_server

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
SAMPLED = 0.9  # not the built-in 0.7: the setting is what is read
RISE = {"max_turns": 1}


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    db = tmp_path_factory.mktemp("traces") / "traces.db"
    proc, url, _ = start_server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_SAMPLED_TEMPERATURE": str(SAMPLED),
                                 "RISE_DEFAULT_MAX_TOKENS": "24"})
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    yield url, client, client.models.list().data[0].id
    stop_server(proc)


def stored_temperature(url: str, trace_id: str) -> float:
    r = httpx.get(f"{url}/v1/refinements/{trace_id}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["config"]["sampling"]["temperature"]


def native(url, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 1, **body}, timeout=120)


@pytest.mark.parametrize("body,expected", [({}, 0.0), ({"samples_per_turn": 3}, SAMPLED),
                                           ({"temperature": 0.4, "samples_per_turn": 2}, 0.4),
                                           ({"temperature": 0}, 0.0)])
def test_native_api(traced, body, expected):
    url, _, _ = traced
    r = native(url, **body)
    assert r.status_code == 200, r.text
    assert stored_temperature(url, r.json()["id"]) == expected


@pytest.mark.parametrize("extra,expected", [({}, 0.0), ({"n": 2}, SAMPLED),
                                            ({"extra_body": {"rise": {**RISE, "samples_per_turn": 2}}}, SAMPLED),
                                            ({"temperature": 1.2}, 1.2)])
def test_chat_with_the_official_client(traced, extra, expected):
    url, client, model = traced
    extra = {"extra_body": {"rise": RISE}, **extra}
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": Q}], store=True, **extra)
    assert stored_temperature(url, r.id) == expected


@pytest.mark.parametrize("extra,expected", [({}, 0.0), ({"extra_body": {"rise": {**RISE, "samples_per_turn": 3}}},
                                                        SAMPLED), ({"temperature": 0.3}, 0.3)])
def test_responses_with_the_official_client(traced, extra, expected):
    url, client, model = traced
    extra = {"extra_body": {"rise": RISE}, **extra}
    r = client.responses.create(model=model, input=Q, store=True, **extra)
    assert r.temperature == expected  # the response shows the temperature it ran at
    assert stored_temperature(url, r.id) == expected


def test_greedy_with_several_draws_is_a_400_on_every_surface(traced):
    url, client, model = traced
    r = native(url, temperature=0, samples_per_turn=3)
    assert r.status_code == 400 and r.json()["error"]["param"] == "temperature"
    assert "identical" in r.json()["error"]["message"] and "samples_per_turn" in r.json()["error"]["message"]
    calls = [lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": Q}],
                                                    temperature=0, n=2, extra_body={"rise": RISE}),
             lambda: client.chat.completions.create(model=model, messages=[{"role": "user", "content": Q}],
                                                    temperature=0, extra_body={"rise": {**RISE, "samples_per_turn": 2}}),
             lambda: client.responses.create(model=model, input=Q, temperature=0,
                                             extra_body={"rise": {**RISE, "samples_per_turn": 2}})]
    for call in calls:
        with pytest.raises(openai.BadRequestError) as e:
            call()
        assert e.value.body["param"] == "temperature" and "identical" in e.value.body["message"]


def test_the_playground_leaves_temperature_to_the_rule(traced):
    """The page's temperature field starts empty (the server's rule applies); /playground.json says
    what the rule gives, which the field's placeholder shows."""
    url, _, _ = traced
    page = httpx.get(f"{url}/static/index.html").text
    field = page[page.index('id="temperature"'):].split(">", 1)[0]
    assert "value=" not in field
    assert httpx.get(f"{url}/playground.json").json()["defaults"]["temperature"] == {"one_sample": 0.0,
                                                                                    "several_samples": SAMPLED}
