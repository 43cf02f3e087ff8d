"""app/api/json_body.py: a request body of OFF_LOOP_BYTES or more is decoded in the `rise-json`
thread, a smaller one on the event loop, both to the same value; a malformed large body is the same
400 as a small one (tests/api/test_refine_api.py's BAD). The large body's decode gives the GIL away
while it runs, and leaves the garbage collector as it found it.

    .venv/bin/python -m pytest -q tests/api/test_json_body.py
"""

import asyncio
import gc
import json
import sys
import threading

import pytest

from app.api import json_body


def decoded_in(body: bytes, monkeypatch) -> tuple[object, str]:
    threads = []

    class Recording:
        @staticmethod
        def loads(raw, **kwargs):
            threads.append(threading.current_thread().name)
            return json.loads(raw, **kwargs)

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


SAME = [b'{"a": 1, "a": 2}', b'[{"x": [1, 2.5, null, true]}, {}, []]', b'{"\\u00e9": "\\ud83d\\ude00", "n": NaN}',
        b'"text"', b'123456789012345678901234567890', b'{"deep": ' * 50 + b'0' + b'}' * 50]


@pytest.mark.parametrize("body", SAME)
def test_the_off_loop_decode_gives_what_json_loads_gives(body):
    value = json_body._decode(body)
    expected = json.loads(body)
    assert json.dumps(value) == json.dumps(expected) and type(value) is type(expected)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_left_as_it_was_even_when_the_body_is_malformed(enabled):
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        assert json_body._decode(b'{"a": [1, 2]}') == {"a": [1, 2]} and gc.isenabled() is enabled
        with pytest.raises(json.JSONDecodeError):
            json_body._decode(b'{"a": [1, 2')
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_a_large_decode_lets_other_threads_run_in_the_middle_of_it(monkeypatch):
    """The event loop is such another thread: it answers /health while a 1 MB body is decoded. A
    second thread counts how often it ran while the decoder had built some of the body's objects but
    not all (plain `json.loads` is one C call that keeps the GIL to its end: never, by construction)."""
    body = json.dumps({"messages": [{"role": "user", "content": "a"}] * 28_000}).encode()
    built, total, inside = [0], 28_001, [0]
    build = json_body._object

    def counting(pairs):
        built[0] += 1
        return build(pairs)

    monkeypatch.setattr(json_body, "_object", counting)
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            inside[0] += 0 < built[0] < total
            stop.wait(0.0005)

    other = threading.Thread(target=ticker)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    other.start()
    try:
        assert json_body._decode(body) == json.loads(body) and built[0] == total
    finally:
        stop.set()
        other.join()
        sys.setswitchinterval(interval)
    assert inside[0] >= 2
