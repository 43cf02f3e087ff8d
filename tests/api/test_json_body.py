"""app/api/json_body.py: a request body of OFF_LOOP_BYTES or more is decoded in the `rise-json`
thread, a smaller one on the event loop, both to the same value; a malformed large body is the same
400 as a small one (tests/api/test_refine_api.py's BAD).

    .venv/bin/python -m pytest -q tests/api/test_json_body.py
"""

import asyncio
import json
import threading

from app.api import json_body


def decoded_in(body: bytes, monkeypatch) -> tuple[object, str]:
    threads = []

    class Recording:
        @staticmethod
        def loads(raw):
            threads.append(threading.current_thread().name)
            return json.loads(raw)

    monkeypatch.setattr(json_body, "json", Recording)

    async def go():
        sent = []

        async def receive():
            if sent:
                return {"type": "http.disconnect"}
            sent.append(1)
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", b"application/json")]}
        request = json_body.OffLoopJSONRequest(scope, receive)
        return await request.json(), await request.json()  # decoded once, then kept

    (value, again) = asyncio.run(go())
    assert value == again and len(threads) == 1
    return value, threads[0]


def test_a_large_body_is_decoded_in_its_own_thread_a_small_one_on_the_loop(monkeypatch):
    large = {"question": "x" * json_body.OFF_LOOP_BYTES}
    value, thread = decoded_in(json.dumps(large).encode(), monkeypatch)
    assert value == large and thread.startswith("rise-json")
    value, thread = decoded_in(b'{"question": "x"}', monkeypatch)
    assert value == {"question": "x"} and thread == threading.main_thread().name
