"""Error mapping with a scripted engine, in-process (the real server has its own tests)."""

import httpx
import pytest

from app.api.main import create_app
from app.config import Settings
from app.engines.base import EngineError
from tests.fakes import FakeEngine, scripted


class Broken(FakeEngine):
    async def generate(self, prompts, params, on_delta=None):
        raise EngineError("GPU fell over")


class Exploding(FakeEngine):
    async def generate(self, prompts, params, on_delta=None):
        raise KeyError("secret internals")


async def call(engine, path, body):
    app = create_app(Settings(), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t") as c:
        return await c.post(path, json=body)


@pytest.mark.parametrize("engine,status,code", [(Broken(scripted(["1"])), 500, "engine_error"),
                                                 (Exploding(scripted(["1"])), 500, "internal_error")])
async def test_engine_failures_are_5xx_in_openai_shape(engine, status, code):
    r = await call(engine, "/v1/refine", {"question": "q"})
    assert r.status_code == status and r.json()["error"]["code"] == code
    assert "Traceback" not in r.text and "secret internals" not in r.text
    r = await call(engine, "/v1/chat/completions", {"model": "fake", "messages": [{"role": "user", "content": "q"}]})
    assert r.status_code == status and r.json()["error"]["type"] == "server_error"


async def test_stream_reports_engine_failure_as_an_error_event():
    r = await call(Broken(scripted(["1"])), "/v1/refine", {"question": "q", "stream": True})
    assert r.status_code == 200
    assert "event: error" in r.text and "engine_error" in r.text and r.text.rstrip().endswith("data: [DONE]")


async def test_fake_engine_drives_the_loop_through_the_api():
    r = await call(FakeEngine(scripted(["4", "5", "5"])), "/v1/refine", {"question": "q", "max_turns": 3})
    assert r.json()["final_answer"] == "5" and r.json()["votes"] == {"4": 1, "5": 2}


async def test_repeated_engine_failures_flip_readiness_until_a_success():
    engine = Broken(scripted(["1"]))
    app = create_app(Settings(engine_failures_unready=3), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t") as c:
        assert (await c.get("/ready")).status_code == 200
        for _ in range(3):
            assert (await c.post("/v1/refine", json={"question": "q"})).status_code == 500
        r = await c.get("/ready")
        assert r.status_code == 503 and r.json()["reason"] == "engine_failures"
        engine.__class__ = FakeEngine  # the engine recovers
        assert (await c.post("/v1/refine", json={"question": "q"})).status_code == 200
        assert (await c.get("/ready")).status_code == 200


async def test_readiness_recovers_without_traffic_once_the_engine_works():
    """Behind a load balancer that routes only to ready pods no request comes to reset the count:
    the probe itself must find that the engine works again."""
    engine = Broken(scripted(["1"]))
    app = create_app(Settings(engine_failures_unready=3), engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://t") as c:
        for _ in range(3):
            assert (await c.post("/v1/refine", json={"question": "q"})).status_code == 500
        for _ in range(2):  # still failing: stays out
            r = await c.get("/ready")
            assert r.status_code == 503 and r.json()["reason"] == "engine_failures"
        engine.__class__ = FakeEngine  # the engine recovers; no request arrives
        assert (await c.get("/ready")).status_code == 200
        assert app.state.engine_failures == 0
