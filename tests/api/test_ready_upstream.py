"""/ready over a remote upstream (issue 13, medium 5): down -> requests fail -> `upstream_unavailable`;
back -> ready within a few seconds with no traffic at all."""

import time

import httpx

from app.api.launch import free_port
from tests.engines.fake_upstream import FakeUpstream, answer
from tests.servers import start_server, stop_server, wait_for

Q = "Sam has 23 apples. He buys 17 more. How many apples does Sam have now?"


def _upstream(port: int) -> FakeUpstream:
    up = FakeUpstream(lambda body, n: answer("The answer is 40.", stream=bool(body.get("stream"))), port=port)
    return up.__enter__()


def test_ready_follows_the_upstream_down_and_back_without_traffic():
    port = free_port()
    up = _upstream(port)
    proc, url, _ = start_server({"RISE_ENGINE_FAILURES_UNREADY": "2"},
                                ["--engine", "openai", "--base-url", f"http://127.0.0.1:{port}/v1"])
    try:
        assert httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 1}, timeout=30).status_code == 200
        up.__exit__(None, None, None)  # the upstream goes down
        for _ in range(3):
            r = httpx.post(f"{url}/v1/refine", json={"question": Q, "max_turns": 1}, timeout=60)
            assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"
        r = httpx.get(f"{url}/ready")
        assert r.status_code == 503 and r.json()["reason"] == "upstream_unavailable"
        up = _upstream(port)  # back, on the same address; no request is sent from here on
        t = time.monotonic()
        assert wait_for(lambda: httpx.get(f"{url}/ready").status_code == 200, 10, 0.5)
        assert time.monotonic() - t < 10
    finally:
        stop_server(proc)
        up.__exit__(None, None, None)
