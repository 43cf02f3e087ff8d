"""Reloading the model without downtime (app/api/reload.py), on a real server: requests in flight
during `POST /admin/reload` all succeed and finish on the weights they started with (their turns
equal the old model's greedy turns), the new model answers afterwards, `/v1/models` and
`rise_model_info` show its version; SIGHUP reloads the served directory after its files changed;
the route needs an admin key and refuses a path that is not a model.

    .venv/bin/pytest -q -n 0 tests/api/test_reload.py
"""

import json
import shutil
import signal
import threading

import httpx
import openai
import pytest

from app.api.reload import model_version
from app.config import ROOT
from tests.servers import start_server, stop_server, wait_for

ADMIN = "adm-reload-0123456789"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
RISE, BASE = ROOT / "models" / "rise-synth", ROOT / "models" / "base-synth"
Q = "Ana has 68 marbles. She ends up with 26 times as many. Then she buys 91 more. How many marbles does Ana have now?"
BODY = {"question": Q, "max_turns": 4, "max_tokens": 96}  # greedy: the same turns on every run of one model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "rise-synth"
    shutil.copytree(RISE, folder)
    proc, url, log = start_server({"RISE_ADMIN_KEYS": ADMIN, "RISE_MODEL": str(folder), "RISE_MAX_BATCH_SIZE": "8"})
    yield proc, url, log, folder
    stop_server(proc)


def version(url) -> str:
    return httpx.get(f"{url}/v1/models").json()["data"][0]["version"]


def reload(url, **body) -> httpx.Response:
    return httpx.post(f"{url}/admin/reload", json=body or None, headers=HEADERS, timeout=300)


def turns(url) -> list[str]:
    r = httpx.post(f"{url}/v1/refine", json=BODY, timeout=300)
    assert r.status_code == 200, r.text
    return [t["text"] for t in r.json()["turns"]]


def model_info(url) -> dict[str, float]:
    lines = [ln for ln in httpx.get(f"{url}/metrics").text.splitlines() if ln.startswith("rise_model_info{")]
    return {ln.split('version="')[1].split('"')[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines}


def test_the_route_needs_an_admin_key_and_a_model_directory(served, server):
    _, url, _, folder = served
    assert httpx.post(f"{url}/admin/reload", timeout=30).status_code == 401
    r = httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert r.status_code == 401 and "admin key" in r.json()["error"]["message"]
    r = reload(url, model="/nonexistent/model")
    assert r.status_code == 400 and r.json()["error"]["param"] == "model" and "not a model directory" in r.text
    r = reload(url, model=str(folder), extra=1)
    assert r.status_code == 400
    r = httpx.post(f"{server}/admin/reload", json={"model": str(BASE)}, timeout=30)  # RISE_ADMIN_KEYS unset
    assert r.status_code == 403 and "RISE_ADMIN_KEYS" in r.json()["error"]["message"]
    assert version(url) == model_version(folder)  # nothing changed


def test_requests_in_flight_finish_on_their_weights_and_the_new_model_answers(served):
    _, url, log, folder = served
    old_turns = turns(url)
    assert version(url) == model_version(folder) and model_info(url) == {model_version(folder): 1.0}
    started = threading.Barrier(7)  # six requests, each past its first tokens, and this test
    results: list = [None] * 6

    def native_stream(i):
        with httpx.stream("POST", f"{url}/v1/refine", json={**BODY, "stream": True}, timeout=300) as r:
            seen = False
            for line in r.iter_lines():
                if line.startswith("data: {") and not seen:
                    seen = True
                    started.wait()
                if line.startswith("event: result"):
                    pass
                elif line.startswith("data: {") and '"final_answer"' in line:
                    results[i] = [t["text"] for t in json.loads(line[6:])["turns"]]

    def chat_stream(i):
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        stream = client.chat.completions.create(
            model="rise-synth", messages=[{"role": "user", "content": Q}], stream=True, max_tokens=96,
            extra_body={"rise": {"max_turns": 4}})
        seen = False
        for chunk in stream:
            if not seen:
                seen = True
                started.wait()
            trace = (chunk.model_extra or {}).get("rise")
            if trace:
                results[i] = [t["text"] for t in trace["turns"]]

    threads = [threading.Thread(target=native_stream if i % 2 else chat_stream, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    started.wait(timeout=300)  # all six are running on the old engine
    r = reload(url, model=str(BASE))
    assert r.status_code == 200, r.text
    answer = r.json()
    for t in threads:
        t.join(300)
    assert answer["version"] == model_version(BASE) and answer["previous_version"] == model_version(folder)
    assert answer["model"] == "rise-synth" and answer["finishing_on_previous"] >= 1
    assert results == [old_turns] * 6  # every request succeeded, on the weights it started with
    assert wait_for(lambda: "the old engine is closed" in log.read_text(), timeout=60)  # once they ended
    new_turns = turns(url)
    assert new_turns != old_turns  # the new model answers
    assert version(url) == model_version(BASE) and model_info(url) == {model_version(BASE): 1.0}
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["id"] == "rise-synth"  # the served name stays
    # and back: the first model's turns again, on the same server
    assert reload(url, model=str(folder)).status_code == 200
    assert turns(url) == old_turns


def test_sighup_reloads_the_served_directory(served):
    proc, url, log, folder = served
    assert reload(url, model=str(folder)).status_code == 200
    before = turns(url)
    for name in ("config.json", "model.safetensors"):  # the operator puts new weights in place
        shutil.copy(BASE / name, folder / name)
    proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: version(url) == model_version(BASE), timeout=120), log.read_text()[-2000:]
    assert turns(url) != before and proc.poll() is None
    assert "SIGHUP: reloading" in log.read_text()


async def in_process(method, path, **kw) -> httpx.Response:
    from app.api.main import create_app
    from app.config import Settings
    from tests.fakes import FakeEngine, scripted

    app = create_app(Settings(admin_keys=[ADMIN]), engine=FakeEngine(scripted(["1"])))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.request(method, path, **kw)


@pytest.mark.parametrize("model", ["/" + "a" * 300, "/tmp/" + "b" * 256 + "/model"])
async def test_a_path_the_os_cannot_even_look_up_is_a_400_not_a_500(model):
    r = await in_process("POST", "/admin/reload", json={"model": model}, headers=HEADERS)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model", r.text


@pytest.mark.parametrize("body", [{"model": 5, "extra": 1}, {"model": ""}, ["x"]])
async def test_a_client_without_the_admin_key_learns_nothing_about_the_body(body):
    r = await in_process("POST", "/admin/reload", json=body)
    assert r.status_code == 401 and "admin key" in r.json()["error"]["message"], r.text


async def test_the_documented_curl_without_a_content_type_is_told_to_send_json():
    """curl -d sends `application/x-www-form-urlencoded`: the 400 says what to send instead."""
    r = await in_process("POST", "/admin/reload", content=b'{"model": "/nonexistent"}', headers={
        **HEADERS, "content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and "application/json" in r.json()["error"]["message"], r.text
