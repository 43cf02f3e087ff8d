"""A real verifier HTTP server for tests (the standard library's ThreadingHTTPServer on a free
127.0.0.1 port, in a thread), behaving by path:

- `/judge`: correct when the answer is `params.expected` (default "31"), else incorrect with FEEDBACK;
- `/wrong`: always incorrect with FEEDBACK;
- `/slow`: answers after SLOW_S seconds (past a short timeout_s);
- `/stall`: incorrect with FEEDBACK after SLOW_S seconds (a refinement that lasts SLOW_S a turn);
- `/error`: HTTP 500; `/garbage`: 200 with a body that is not JSON; `/shape`: JSON without a boolean `correct`;
- `/cookie`: as `/wrong`, setting a cookie (COOKIE) for the whole host.

Every request body it receives is kept in `calls` (path, body, headers).

    with VerifierServer() as v: print(v.url + "/judge", v.calls)
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FEEDBACK = "The answer is incorrect. The test `test_apples_left` failed: recount what Sam gives away. zq-feedback-mark"
SLOW_S = 2.0
COOKIE = "verifier-session=zq-cookie"


class VerifierServer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                outer.calls.append((self.path, body, dict(self.headers)))
                if self.path == "/judge":
                    expected = (body.get("params") or {}).get("expected", "31")
                    ok = body.get("answer") == expected
                    self._send(200, {"correct": ok} if ok else {"correct": False, "feedback": FEEDBACK})
                elif self.path == "/wrong":
                    self._send(200, {"correct": False, "feedback": FEEDBACK})
                elif self.path == "/slow":
                    time.sleep(SLOW_S)
                    self._send(200, {"correct": True})
                elif self.path == "/stall":
                    time.sleep(SLOW_S)
                    self._send(200, {"correct": False, "feedback": FEEDBACK})
                elif self.path == "/error":
                    self._send(500, {"error": "boom"})
                elif self.path == "/garbage":
                    self._send(200, b"<html>not json</html>")
                elif self.path == "/shape":
                    self._send(200, {"correct": "yes", "feedback": 5})
                elif self.path == "/cookie":
                    self._send(200, {"correct": False, "feedback": FEEDBACK}, {"Set-Cookie": f"{COOKIE}; Path=/"})
                else:
                    self._send(404, {"error": "no such path"})

            def _send(self, status: int, payload, headers: dict | None = None) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the caller gave up (a timeout)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def endpoints(self, timeout_s: float = 5.0) -> dict:
        """RISE_VERIFIERS entries for every behaviour, `slow` with a 0.3 s timeout."""
        entries = {name: {"url": f"{self.url}/{name}", "timeout_s": timeout_s}
                   for name in ("judge", "wrong", "error", "garbage", "shape", "cookie")}
        entries["slow"] = {"url": f"{self.url}/slow", "timeout_s": 0.3}
        entries["judge"]["headers"] = {"Authorization": "Bearer verifier-secret"}
        return entries

    def __enter__(self) -> "VerifierServer":
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
