"""Verifiers under attack (issue 20, a hostile review): what a client or a careless operator found.

- a counted repeat hidden from the repeat-cost guard by a comment or verbose-mode whitespace
  (`(?x)(a{1000}) {1000}` compiled a million states: 275 MB held by the pattern cache per request;
  one level more ran the server out of memory);
- a JSON schema whose validation is exponential (`anyOf` of two `$ref`s to the next level, 40 deep):
  the request answered after its 1 s cap, but the worker thread went on for hours, burning a core,
  growing to gigabytes, starving every other built-in check of worker threads (and the request
  deadline did not bound them) and holding up shutdown;
- a verifier's parameters holding NaN or Infinity (Starlette reads them, the call cannot send them)
  failed every call as the operator's verifier's `error`;
- httpx logged every verifier call's URL at INFO, a key in its userinfo or query included;
- a verifier URL httpx accepts but cannot call (a space in the host, port 99999) started the server.

    .venv/bin/python -m pytest -q tests/api/test_verifiers_hostile.py
"""

import asyncio
import json
import subprocess
import sys
import threading
import time

import httpx
import pytest

from app.refine.deadline import Deadline
from app.verifiers import builtin, patterns
from app.verifiers.builtin import JsonSchema
from app.verifiers.errors import CheckTimeout
from app.verifiers.registry import Verifiers
from tests.api.test_metrics import scrape
from tests.api.test_verifiers import Q, _env, calls, refine
from tests.servers import ROOT, free_port, start_server, stop_server
from tests.verifier_server import COOKIE, VerifierServer

HIDDEN_REPEATS = [r"(?x)(a{400}) {400}", r"(a{400})(?#a comment){400}", "(?x)(a{400})# a comment\n{400}",
                  r"(?x)(a{400}){400, 400}", "(?x)(a{400}){400,# a comment}\n400}", r"(?ix:(a {400}) {400})"]


def bomb(levels: int = 40, keyword: str = "anyOf", leaf=None) -> dict:
    """Each level tries both branches on the next: 2**levels checks of one instance."""
    defs = {f"d{i}": {keyword: [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]} for i in range(levels)}
    defs[f"d{levels}"] = {"not": {}} if leaf is None else leaf
    return {"$defs": defs, "$ref": "#/$defs/d0"}


@pytest.mark.parametrize("pattern", HIDDEN_REPEATS)
def test_a_comment_or_verbose_whitespace_does_not_hide_a_nested_repeat(pattern):
    assert patterns.repeat_cost(pattern) > patterns.MAX_REPEAT_COST
    with pytest.raises(ValueError, match="counted repeats"):
        patterns.compile_pattern(pattern)


# `(?x)` costs 3 (a group and its two characters), a capturing group 20 and what it holds
@pytest.mark.parametrize("pattern,cost", [(r"(?x) (\d+) \s* # digits" "\n", 3 + 22 + 2),
                                          (r"(?x)(a)\ {300}", 3 + 21 + 300), (r"(a{20})(?#c){30}", (20 + 20) * 30),
                                          (r"(?x)[ ]{3} (a) {4}", 3 + 3 + 21 * 4)])
def test_verbose_patterns_are_still_costed_as_written(pattern, cost):
    assert patterns.repeat_cost(pattern) == cost
    patterns.compile_pattern(pattern)


@pytest.mark.parametrize("keyword,leaf", [("anyOf", None), ("allOf", {})])
def test_an_exponential_schema_stops_its_worker_thread_at_the_time_cap(keyword, leaf):
    check = JsonSchema.model_validate({"schema": bomb(30, keyword, leaf), "on": "answer"})
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(_run(check._is_valid, 31)), daemon=True)
    worker.start()
    worker.join(builtin.SCHEMA_TIMEOUT_S + 5)
    assert not worker.is_alive(), "the validation outlived its time cap"
    assert outcome == [CheckTimeout]


def _run(fn, *args):
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001 - the test looks at which
        return type(e)


def test_a_built_in_check_gives_no_verdict_past_the_requests_deadline(monkeypatch):
    """A built-in check waits for a worker thread (all may be busy); the request's deadline still holds."""
    monkeypatch.setattr(patterns, "search", lambda *_a, **_k: time.sleep(3) or True)

    async def judged():
        oracle = Verifiers().oracle("regex", {"pattern": "31"}, Deadline.after(0.3))
        start = time.monotonic()
        verdict = await oracle.judge("Q?", "31", "31", 1)
        return verdict, time.monotonic() - start

    verdict, took = asyncio.run(judged())
    assert verdict.correct is None and took < 2


@pytest.fixture(scope="module")
def elsewhere():
    """A second verifier server: the same host, another port."""
    with VerifierServer() as v:
        yield v


@pytest.fixture(scope="module")
def served(verifier, elsewhere):
    endpoints = verifier.endpoints()
    endpoints["keyed"] = {"url": verifier.url + "/wrong?key=zq-urlkey"}  # credentials (user:pass@) are refused at start-up
    endpoints["elsewhere"] = {"url": elsewhere.url + "/judge"}
    proc, url, log = start_server({"RISE_VERIFIERS": json.dumps(endpoints)})
    yield proc, url, log
    stop_server(proc)


@pytest.mark.parametrize("spec", [{"name": "regex", "pattern": HIDDEN_REPEATS[0]},
                                  {"name": "json_schema", "schema": {"type": "string", "pattern": HIDDEN_REPEATS[1]}}])
def test_a_hidden_nested_repeat_is_a_400_naming_the_field(served, spec):
    _, url, _ = served
    r = httpx.post(f"{url}/v1/refine", json={"question": Q, "verifier": spec, "max_turns": 1}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == f"verifier.{'pattern' if spec['name'] == 'regex' else 'schema'}"


def test_a_schema_bomb_leaves_the_server_idle_once_it_has_answered(served):
    proc, url, _ = served
    before = scrape(url)
    body = refine(url, verifier={"name": "json_schema", "schema": bomb(), "on": "answer"}, max_turns=1)
    assert [(t["checked"], t["correct"]) for t in body["turns"]] == [(False, None)]
    time.sleep(builtin.SCHEMA_TIMEOUT_S)  # the worker thread checks its clock at every keyword
    cpu = _cpu_seconds(proc.pid)
    time.sleep(3)
    assert _cpu_seconds(proc.pid) - cpu < 0.5, "a validation is still running"  # it was a core's worth
    assert calls(scrape(url), "rise_verifier_calls_total", name="json_schema", outcome="timeout") \
        - calls(before, "rise_verifier_calls_total", name="json_schema", outcome="timeout") == 1
    start = time.monotonic()  # and the other built-in checks still get a worker thread
    assert refine(url, verifier={"name": "regex", "pattern": "31"}, max_turns=1, timeout=10)["stop_reason"] == "correct"
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("value", ["NaN", "Infinity", "[1, -Infinity]"])
def test_parameters_that_are_not_json_are_a_400_not_a_verifier_error(served, verifier, value):
    """Starlette reads NaN and Infinity; the call's JSON cannot carry them (it failed as the
    operator's verifier's `error`, with an ERROR log line, on every turn)."""
    _, url, _ = served
    before, calls_before = scrape(url), len(verifier.calls)
    body = '{"question": "%s", "max_turns": 2, "verifier": {"name": "judge", "expected": %s}}' % (Q, value)
    r = httpx.post(f"{url}/v1/refine", content=body, headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 400 and r.json()["error"]["param"] == "verifier.expected", r.text
    assert len(verifier.calls) == calls_before
    assert calls(scrape(url), "rise_verifier_calls_total", name="judge", outcome="error") \
        == calls(before, "rise_verifier_calls_total", name="judge", outcome="error")


def test_a_verifier_url_holding_a_key_stays_out_of_the_log(served):
    """httpx wrote every call's URL at INFO (the default level), userinfo and query included."""
    _, url, log = served
    refine(url, verifier={"name": "keyed"}, max_turns=1)
    text = log.read_text()
    for secret in ("zq-urlkey",):
        assert secret not in text, secret


def test_verifier_calls_carry_no_cookies_between_requests(served, verifier, elsewhere):
    """A cookie one endpoint set while answering one request was sent to another endpoint (the same
    host, another port) on the next request, whoever sent it: the client kept a cookie jar."""
    _, url, _ = served
    before, before_elsewhere = len(verifier.calls), len(elsewhere.calls)
    refine(url, verifier={"name": "cookie"}, max_turns=2)  # sets the cookie on its first turn
    refine(url, verifier={"name": "elsewhere"}, max_turns=1)
    refine(url, verifier={"name": "cookie"}, max_turns=1)
    sent = [headers for _, _, headers in verifier.calls[before:] + elsewhere.calls[before_elsewhere:]]
    assert len(sent) == 4
    assert [h for h in sent if "cookie" in {k.lower() for k in h} or COOKIE in str(h)] == []


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


@pytest.mark.parametrize("url,named", [("http://verifier host/v", "host"), ("http://127.0.0.1:99999/v", "port")])
def test_rise_serve_exits_2_on_a_verifier_url_that_cannot_be_called(url, named):
    value = json.dumps({"grader": {"url": url, "headers": {"Authorization": "Bearer zq-hostile-secret"}}})
    r = subprocess.run([sys.executable, "-m", "app.cli", "serve", "--port", str(free_port())], cwd=ROOT,
                       env={**_env(), "RISE_VERIFIERS": value}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "verifiers.grader.url" in r.stderr and named in r.stderr, r.stderr[-500:]
    assert "zq-hostile-secret" not in r.stderr


def test_a_verifier_url_with_credentials_is_refused_at_configuration():
    """httpx would send user:password@ as Basic auth, replacing the operator's Authorization header."""
    from pydantic import ValidationError

    from app.verifiers.endpoints import VerifierEndpoint

    with pytest.raises(ValidationError, match="credentials"):
        VerifierEndpoint(url="http://user:secret@127.0.0.1:9/v")


def test_a_schema_ref_never_fetches_through_the_registry():
    """Even a $ref the request-time check would let through resolves only inside the schema: the
    validator's registry is empty, so a remote reference is never retrieved."""
    import http.server

    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            body = b'{"type": "integer"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check = builtin.JsonSchema.model_construct(json_schema={"$ref": f"http://127.0.0.1:{server.server_port}/s.json"})
        check.model_post_init(None)
        with pytest.raises(Exception):  # noqa: B017 - referencing's Unresolvable, whatever its wrapper
            list(check._validator.iter_errors(1))
        assert hits == []
    finally:
        server.shutdown()
