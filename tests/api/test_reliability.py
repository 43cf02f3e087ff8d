"""Keys, admission control, limits, deadlines, cancellation, request ids, privacy and graceful
shutdown, against real servers."""

import asyncio
import json
import signal
import time

import httpx
import openai
import pytest

from tests.api.test_metrics import get, parse
from tests.servers import start_server, stop_server, wait_for

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
KEYS = ("k-alpha-0123456789", "k-beta-9876543210")
AUTH = {"Authorization": f"Bearer {KEYS[1]}"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, verifier):
    keyfile = tmp_path_factory.mktemp("keys") / "keys.txt"
    keyfile.write_text(KEYS[1] + "\n")
    # `stall`: a verifier that takes 2 s a turn and is never satisfied (the deadline test's long refinement)
    stall = {"stall": {"url": f"{verifier.url}/stall", "timeout_s": 10}}
    proc, url, log = start_server({"RISE_API_KEYS": KEYS[0], "RISE_API_KEYS_FILE": str(keyfile),
                                   "RISE_MAX_IN_FLIGHT": "2", "RISE_MAX_QUEUE": "2", "RISE_LOG_JSON": "true",
                                   "RISE_VERIFIERS": json.dumps(stall)})
    yield url, log
    stop_server(proc)


@pytest.mark.parametrize("method,path", [("GET", "/v1/models"), ("POST", "/v1/refine"), ("POST", "/v1/chat/completions")])
@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {KEYS[0]}x", f"Basic {KEYS[0]}", KEYS[0], "Bearer  x"])
def test_every_v1_route_refuses_missing_or_wrong_keys(guarded, method, path, header):
    url, _ = guarded
    headers = {"Authorization": header} if header else {}
    r = httpx.request(method, f"{url}{path}", headers=headers, json={"question": Q})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"] == "Bearer"


def test_keys_from_settings_and_file_work_and_probes_stay_open(guarded):
    url, _ = guarded
    for key in KEYS:
        r = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 1}, headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200
    for path in ("/health", "/ready", "/metrics"):
        assert httpx.get(f"{url}{path}").status_code == 200
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[0], max_retries=0)
    assert client.models.list().data
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()


def test_key_check_is_constant_time(monkeypatch):
    """Every accepted key is compared with hmac.compare_digest, whatever matches."""
    from app.api import middleware

    calls = []
    real = middleware.hmac.compare_digest
    monkeypatch.setattr(middleware.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    keys = [b"secret-one", b"secret-two", b"secret-three"]

    for token in ("secret-one", "secret-onX", "zzzzzzzzzz", "secret-three"):
        calls.clear()
        middleware.key_matches(keys, f"Bearer {token}".encode())
        assert len(calls) == 3  # no early exit on a match or a mismatch
    monkeypatch.undo()

    def timed(token, n=3000):
        header = f"Bearer {token}".encode()
        t = time.thread_time()
        for _ in range(n):
            middleware.key_matches(keys, header)
        return time.thread_time() - t

    # this thread's CPU time (not the wall clock, which counts the time another process held the core:
    # a fresh clone's run once measured one side twice the other at the fastest of 15 wall-clock runs),
    # interleaved, and each the fastest of 15, so the minimum is the comparison's own cost
    rounds = [(timed("secret-onf"), timed("xxxxxxxxxx")) for _ in range(15)]
    near, far = min(r[0] for r in rounds), min(r[1] for r in rounds)
    assert 0.5 < near / far < 2.0  # a right prefix buys no measurable time


def test_admission_sheds_with_retry_after(guarded):
    url, _ = guarded

    async def go():
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=120) as c:
            return await asyncio.gather(*[c.post("/v1/refine", json={"question": Q, "max_turns": 5}) for _ in range(12)])

    rs = asyncio.run(go())
    codes = [r.status_code for r in rs]
    assert set(codes) <= {200, 429} and codes.count(200) >= 4 and codes.count(429) >= 1
    assert all(r.headers.get("retry-after") for r in rs if r.status_code == 429)
    assert all(r.json()["error"]["type"] == "rate_limit_error" for r in rs if r.status_code == 429)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'rise_requests_shed_total{model_name=' in metrics and 'reason="queue_full"' in metrics


def test_body_size_and_deadlines(guarded):
    url, _ = guarded
    r = httpx.post(f"{url}/v1/refine", content=b'{"question": "' + b"x" * 10_000_000 + b'"}',
                   headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413 and "larger than" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 10, "timeout": 0.001}, headers=AUTH)
    assert r.status_code == 504 and r.json()["error"]["param"] == "timeout"
    # every turn takes at least the verifier's 2 s, whatever the engine's pace (later turns that speculate
    # from earlier ones are far faster than the first): 4.5 s is room for a turn or two, not for ten
    r = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 10, "timeout": 4.5,
                                             "verifier": {"name": "stall"}}, headers=AUTH, timeout=60)
    body = r.json()
    assert r.status_code == 200 and body["stop_reason"] == "deadline" and 1 <= len(body["turns"]) < 10
    assert r.elapsed.total_seconds() < 4.5 + 1.5  # a verifier call is cut at the deadline too (verifiers.md)


def test_request_id_and_private_logs(guarded):
    url, log = guarded
    r = httpx.post(f"{url}/v1/refine", json={"question": Q + " zebra-marker", "reference": "86420", "max_turns": 2},
                   headers={**AUTH, "X-Request-ID": "trace-abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-abc-123"
    assert len(httpx.get(f"{url}/health").headers["x-request-id"]) == 32  # generated when absent
    time.sleep(0.3)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    mine = [ln for ln in lines if ln["request_id"] == "trace-abc-123"]
    assert any(ln["message"].startswith("refined") and ln["mode"] == "oracle" for ln in mine)
    text = log.read_text()
    assert "86420" not in text and "zebra-marker" not in text


def test_client_disconnect_mid_stream_frees_the_slot(server, model_name):
    def cancelled():
        text = httpx.get(f"{server}/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("rise_requests_cancelled_total{"))

    before = cancelled()
    with httpx.stream("POST", f"{server}/v1/refine", json={"question": Q, "max_turns": 10, "stream": True}) as r:
        for line in r.iter_lines():
            if line.startswith("event: delta"):
                break  # leave after the first token
    assert wait_for(lambda: cancelled() == before + 1, 20)
    text = httpx.get(f"{server}/metrics").text
    assert f'rise_requests_in_flight{{model_name="{model_name}",route="/v1/refine"}} 0.0' in text
    assert f'rise_engine_queue_depth{{model_name="{model_name}"}} 0.0' in text


async def running(client: httpx.AsyncClient) -> float:
    """Refinements holding an admission slot, read off /metrics."""
    return get(parse((await client.get("/metrics")).text), "rise_requests_running")


def test_sigterm_drains_in_flight_and_exits_zero():
    proc, url, _ = start_server({"RISE_SHUTDOWN_GRACE_S": "60"})

    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            inflight = [asyncio.create_task(c.post("/v1/refine", json={"question": Q, "max_turns": 8})) for _ in range(4)]
            # SIGTERM once all four are admitted (a fixed sleep lost the race on a loaded CI machine: the
            # requests arrived after the signal and were rightly refused with 503)
            while await running(c) < 4:
                assert not any(t.done() for t in inflight), [t.result().status_code for t in inflight if t.done()]
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            try:
                late = await c.post("/v1/refine", json={"question": Q, "max_turns": 1})
                refused = late.status_code == 503
            except httpx.TransportError:
                refused = True
            return await asyncio.gather(*inflight), refused

    done, refused = asyncio.run(go())
    assert [r.status_code for r in done] == [200] * 4 and all(len(r.json()["turns"]) == 8 for r in done)
    assert refused
    assert proc.wait(60) == 0


def test_client_gone_before_a_plain_answer_cancels_its_work(server, model_name):
    def cancelled():
        text = httpx.get(f"{server}/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("rise_requests_cancelled_total{") and 'route="/v1/refine"' in line)

    before = cancelled()
    with pytest.raises(httpx.ReadTimeout):  # the client stops waiting long before ten turns are done
        httpx.post(f"{server}/v1/refine", json={"question": Q, "max_turns": 10, "max_tokens": 160}, timeout=0.3)
    assert wait_for(lambda: cancelled() == before + 1, 20)
    text = httpx.get(f"{server}/metrics").text
    assert f'rise_requests_in_flight{{model_name="{model_name}",route="/v1/refine"}} 0.0' in text
    assert f'rise_engine_queue_depth{{model_name="{model_name}"}} 0.0' in text
