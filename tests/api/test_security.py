"""Review findings (issue 13, high 1-2 and medium 6), run as an attacker would against a real
server: keys, authentication before admission, slow and oversized bodies, queue places."""

import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from app.api.middleware import key_matches
from app.config import Settings
from tests.api.test_metrics import get, scrape
from tests.servers import ROOT, start_server, stop_server, wait_for

Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
KEY = "k-secure-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.mark.parametrize("keys", ['["k1", ""]', '["k1", "   "]', '["k1", "k\\u00e9y"]', '["k 1"]', '[1]'])
def test_bad_keys_are_refused_at_settings(keys, monkeypatch):
    monkeypatch.setenv("RISE_API_KEYS", keys)
    with pytest.raises(ValueError, match="RISE_API_KEYS"):
        Settings()


@pytest.mark.parametrize("keys", [",", " , ", "[]", " ", ""])
def test_keys_given_but_empty_are_refused(keys, monkeypatch):
    """A setting that is given but yields no key must never mean "serve without keys"."""
    monkeypatch.setenv("RISE_API_KEYS", keys)
    with pytest.raises(ValueError, match="RISE_API_KEYS"):
        Settings()


@pytest.mark.parametrize("text", ["", "\n\n  \n", "# only a comment\n"])
def test_a_key_file_without_keys_is_refused(text, tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text(text)
    with pytest.raises(ValueError, match="holds no key"):
        Settings(api_keys_file=f)


@pytest.mark.parametrize("env", [{"RISE_API_KEYS": '["k-visible-1", ""]'}, {"RISE_API_KEYS": "k-visible-1,k\u00e9"},
                                 {"RISE_API_KEYS": '["k-visible-1", '}, {"RISE_API_KEYS": ","}])
def test_serve_refuses_bad_keys_without_printing_them(env):
    p = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env})
    assert p.returncode == 2 and "RISE_API_KEYS" in p.stderr.replace("api_keys", "RISE_API_KEYS"), p.stderr
    assert "k-visible-1" not in p.stderr and "Traceback" not in p.stderr


def test_blank_line_free_key_file_and_bad_file(tmp_path):
    good = tmp_path / "keys.txt"
    good.write_text("\nk-one\n\n  k-two  \n# a comment\n")
    assert Settings(api_keys_file=good).accepted_keys() == ["k-one", "k-two"]
    bad = tmp_path / "bad.txt"
    bad.write_text("k-one\nk\u00e9y\n")
    with pytest.raises(ValueError, match="RISE_API_KEYS_FILE"):
        Settings(api_keys_file=bad)


def test_serve_with_an_empty_json_key_exits_2_naming_the_setting():
    """The attack: RISE_API_KEYS='["k1", ""]' used to turn authentication off."""
    p = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", "1"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "RISE_API_KEYS": '["k1", ""]'})
    assert p.returncode == 2, p.stderr
    assert "RISE_API_KEYS" in p.stderr and "Traceback" not in p.stderr


def test_a_missing_header_never_matches_even_an_empty_key():
    assert not key_matches([b"", b"k1"], None)
    assert not key_matches([b"", b"k1"], b"Bearer ")
    assert not key_matches([b"k1"], b"Basic k1")
    assert key_matches([b"k1"], b"bearer   k1 ")


@pytest.fixture(scope="module")
def tight():
    proc, url, log = start_server({"RISE_API_KEYS": KEY, "RISE_MAX_IN_FLIGHT": "1", "RISE_MAX_QUEUE": "1",
                                   "RISE_BODY_TIMEOUT_S": "1.5", "RISE_MAX_BODY_BYTES": "20000"})
    yield url
    stop_server(proc)


def _raw(url: str, head: bytes) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(head)
    return s


def _status(s: socket.socket) -> int:
    data = s.recv(4096)
    return int(data.split(b" ", 2)[1]) if data else 0


def test_unauthenticated_slow_body_holds_no_slot(tight):
    """Headers and half a body with no key: 401 at once; a keyed request is served meanwhile."""
    body = b'{"question": "' + Q.encode() + b'", "max_turns": 1}'
    s = _raw(tight, b"POST /v1/refine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    try:
        assert _status(s) == 401
        r = httpx.post(f"{tight}/v1/refine", json={"question": Q, "max_turns": 1}, headers=AUTH, timeout=60)
        assert r.status_code == 200
    finally:
        s.close()


def test_without_a_key_every_refusal_is_401(tight):
    r = httpx.post(f"{tight}/v1/refine", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.post(f"{tight}/v1/refine", content=b"x" * 50_000)
    assert r.status_code == 401


def test_a_keyed_slow_body_gets_408_and_holds_no_slot(tight):
    body = b'{"question": "' + Q.encode() + b'", "max_turns": 1}'
    s = _raw(tight, b"POST /v1/refine HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Authorization: Bearer " + KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
    try:
        t = time.monotonic()
        r = httpx.post(f"{tight}/v1/refine", json={"question": Q, "max_turns": 1}, headers=AUTH, timeout=60)
        assert r.status_code == 200  # the slow body is not admitted, so the one slot is free
        assert _status(s) == 408
        assert time.monotonic() - t < 30
    finally:
        s.close()


def test_chunked_body_over_the_limit_is_413(tight):
    def chunks():
        for _ in range(30):
            yield b"x" * 1000

    r = httpx.post(f"{tight}/v1/refine", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    small = b'{"question": "' + Q.encode() + b'", "max_turns": 1}'
    r = httpx.post(f"{tight}/v1/refine", content=iter([small[:20], small[20:]]),
                   headers={**AUTH, "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200  # a chunked body within the limit still works


def _gauge(url: str, name: str) -> float:
    return get(scrape(url), name)


def _waiting(url: str) -> float:
    return _gauge(url, "rise_requests_waiting")


def test_a_client_that_leaves_the_queue_gives_its_place_back_at_once(tight):
    results = {}

    def long_one():
        results["long"] = httpx.post(f"{tight}/v1/refine", json={"question": Q, "max_turns": 10, "max_tokens": 512,
                                                                 "samples_per_turn": 8, "temperature": 2.0},
                                     headers=AUTH, timeout=120).status_code

    runner = threading.Thread(target=long_one)
    runner.start()
    assert wait_for(lambda: _in_flight(tight) >= 1, 20, 0.05)
    with pytest.raises(httpx.ReadTimeout):  # queued behind the long one, then gives up
        httpx.post(f"{tight}/v1/refine", json={"question": Q, "max_turns": 1}, headers=AUTH, timeout=1.0)
    assert wait_for(lambda: _waiting(tight) == 0, 3, 0.05)  # its place is free before the long one ends
    assert runner.is_alive()
    assert _gauge(tight, "rise_requests_running") == 1  # the long one holds the only slot
    # the queue has room again: the next request queues (and times out here, or is served once the
    # long one ends) instead of a 429
    try:
        r = httpx.post(f"{tight}/v1/refine", json={"question": Q, "max_turns": 1}, headers=AUTH, timeout=1.0)
        assert r.status_code == 200, r.text
    except httpx.ReadTimeout:
        pass
    runner.join(120)
    assert results["long"] == 200
    assert wait_for(lambda: _gauge(tight, "rise_requests_running") == 0, 5, 0.05)  # and gave it back


def _in_flight(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rise_requests_in_flight{") and 'route="/v1/refine"' in line)


def test_refused_bodies_close_their_connection(tight):
    """A client without a key that keeps trickling its body gets its 401 and the connection closes."""
    s = _raw(tight, b"POST /v1/refine HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 10)
    try:
        reply = b""
        while chunk := s.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 401") and b"connection: close" in reply.lower()
    finally:
        s.close()


def test_open_connections_are_capped():
    proc, url, _ = start_server({"RISE_MAX_CONNECTIONS": "4"})
    idle = [_raw(url, b"") for _ in range(6)]
    try:
        time.sleep(0.3)
        assert httpx.get(f"{url}/health", timeout=10).status_code == 503  # over the cap: refused at once
    finally:
        for s in idle:
            s.close()
    assert wait_for(lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200, 10)
    stop_server(proc)
