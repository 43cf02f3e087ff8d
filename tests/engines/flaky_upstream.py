"""An OpenAI-compatible upstream on 127.0.0.1 that fails on purpose, for the turn-retry and affinity
tests: real HTTP (chunked streams, as uvicorn and vLLM send them), each chat request's body and
headers recorded. The n-th chat request (from 0) does what `script[n]` says, then "ok":

    ok     a full answer ("The answer is 4."), streamed when asked
    reset  the request is read, then the connection is reset with no response
    close  the request is read, then the connection is closed (FIN) with no response, as a load
           balancer closes a kept-alive connection it had given up on
    cut    a streamed answer that stops after its first words: the connection closes mid-body
    500    HTTP 500 with an OpenAI-shaped error

    with FlakyUpstream(["ok", "cut"]) as up:
        engine = OpenAIEngine(up.url)
"""

from __future__ import annotations

import http.server
import json
import socket
import struct
import threading

from tests.engines.fake_upstream import MODELS, chunk

TEXT = "The answer is 4."
USAGE = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}


class FlakyUpstream:
    def __init__(self, script: list[str] | None = None, models: dict | None = None) -> None:
        self.script, self.models = list(script or []), models or MODELS
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                self._json(200, upstream.models if self.path.endswith("/models") else {"error": "no"})

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with upstream._lock:
                    n = len(upstream.bodies)
                    upstream.bodies.append(body)
                    upstream.headers.append({k.lower(): v for k, v in self.headers.items()})
                action = upstream.script[n] if n < len(upstream.script) else "ok"
                if action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    return  # no response: closing with SO_LINGER 0 sends a reset
                if action == "close":
                    self.close_connection = True
                    return
                if action == "500":
                    return self._json(500, {"error": {"message": "the engine died", "type": "server_error"}})
                if not body.get("stream"):
                    return self._json(200, {"id": "c", "object": "chat.completion", "usage": USAGE, "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                words = TEXT.split(" ")
                events = [chunk({"role": "assistant", "content": ""})] + \
                    [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
                if action == "cut":
                    for e in events[:3]:
                        self._chunk(f"data: {json.dumps(e)}\n\n")
                    self.close_connection = True
                    return  # no terminating chunk: the client reads an incomplete body
                for e in events + [chunk({}, "stop"), {"choices": [], "usage": USAGE}]:
                    self._chunk(f"data: {json.dumps(e)}\n\n")
                self._chunk("data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, text: str) -> None:
                data = text.encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _json(self, status: int, payload: object) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # a client that gave up: not news
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def session_keys(self, header: str = "x-session-id") -> list[str | None]:
        return [h.get(header.lower()) for h in self.headers]

    def __enter__(self) -> "FlakyUpstream":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
