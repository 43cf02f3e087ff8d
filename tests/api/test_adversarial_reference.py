"""Issue 13, high 3 and medium 4, as an attacker would run them against a real server: a crafted
reference with many hot samples must neither block other requests nor outlive the request's
deadline, and no reference reaches the log."""

import asyncio
import time

import httpx
import pytest

from tests.servers import start_server, stop_server

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
MARK = "S3CRETQ"
REFERENCES = ["10^{10^{10}}", f"{MARK}x(x(x(x(x(x(x(1)))))))", "9^{9^{9^{9}}}" + f"+{MARK}"]


@pytest.fixture(scope="module")
def served():
    proc, url, log = start_server({"RISE_ANSWER_CHECK_TIMEOUT_S": "0.5", "RISE_LOG_LEVEL": "debug"})
    yield url, log
    stop_server(proc)


async def _health_latencies(c: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    out = []
    while not stop.is_set():
        t = time.monotonic()
        r = await c.get("/health")
        assert r.status_code == 200
        out.append(time.monotonic() - t)
        await asyncio.sleep(0.05)
    return out


def test_crafted_references_do_not_block_the_server_or_outlive_the_deadline(served):
    url, _ = served

    async def go():
        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            stop = asyncio.Event()
            probe = asyncio.create_task(_health_latencies(c, stop))
            t = time.monotonic()
            attacks = await asyncio.gather(*[
                c.post("/v1/refine", json={"question": Q, "reference": ref, "samples_per_turn": 8, "temperature": 2,
                                           "max_turns": 3, "max_tokens": 32, "timeout": 3}) for ref in REFERENCES])
            took = time.monotonic() - t
            normal = await c.post("/v1/refine", json={"question": Q, "reference": "31", "max_turns": 1})
            stop.set()
            return attacks, took, normal, await probe

    attacks, took, normal, latencies = asyncio.run(go())
    assert all(r.status_code in (200, 504) for r in attacks), [r.text for r in attacks]
    assert took < 3 + 3  # each request's 3 s deadline holds (a comparison cap of 0.5 s, plus slack)
    assert normal.status_code == 200
    assert max(latencies) < 1.0, max(latencies)  # /health answered throughout
    for r in attacks:
        assert MARK not in r.text and "10^{10^{10}}" not in r.text  # never echoed


def test_no_reference_reaches_the_log(served):
    """math-verify logs what it failed to parse in time ("Timeout during parsing: <text>")."""
    url, log = served
    models = httpx.get(f"{url}/v1/models")
    assert models.status_code == 200, models.text
    model = models.json()["data"][0]["id"]
    deep = f"${MARK}" + "x(" * 200 + "1" + ")" * 200 + "$"
    for ref in [deep, f"\\frac{{{MARK}}}{{x(x(x(1)))}}", *REFERENCES]:
        r = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
            "model": model, "messages": [{"role": "user", "content": Q}], "max_tokens": 160, "temperature": 0,
            "rise": {"reference": ref, "max_turns": 2, "timeout": 8}})
        assert r.status_code in (200, 400, 504)
    time.sleep(0.5)
    text = log.read_text()
    assert MARK not in text and "10^{10^{10}}" not in text


def test_deeply_nested_references_are_refused(served):
    url, _ = served
    r = httpx.post(f"{url}/v1/refine", json={"question": Q, "reference": "(" * 9 + "1" + ")" * 9})
    assert r.status_code == 400 and r.json()["error"]["param"] == "reference"
    assert "nest" in r.json()["error"]["message"]


def test_math_verify_cannot_log_what_it_parses():
    import logging

    import app.answers.checker  # noqa: F401 - silences the loggers on import

    for name in ("math_verify.parser", "math_verify.grader", "latex2sympy2_extended.math_normalization"):
        assert not logging.getLogger(name).isEnabledFor(logging.CRITICAL)
