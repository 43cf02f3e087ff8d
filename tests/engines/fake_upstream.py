"""A scripted OpenAI-compatible upstream on 127.0.0.1 for the remote engine's tests: real HTTP,
a handler thread per request, every chat request's body recorded.

    with FakeUpstream(lambda body, n: answer("The answer is 4.")) as up:
        engine = OpenAIEngine(up.url)
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

MODELS = {"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "someone", "max_model_len": 2048}]}


@dataclass
class Reply:
    """What the upstream answers: `body` as JSON, or `events` as a Server-Sent Events stream (each a
    JSON-able object or a raw string), after `delay` seconds."""

    status: int = 200
    body: object = None
    events: list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def answer(text: str, prompt_tokens: int = 7, completion_tokens: int = 3, *, stream: bool) -> Reply:
    """A well-formed answer of `text`, streamed a word at a time when the request asked to stream."""
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if not stream:
        return Reply(body={"id": "c", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}], "usage": usage})
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    return Reply(events=[chunk({"role": "assistant", "content": ""})] + [chunk({"content": p}) for p in pieces]
                 + [chunk({}, "stop"), {"choices": [], "usage": usage}])


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "c", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class FakeUpstream:
    """`chat(body, n)` decides the reply to the n-th chat request (from 0); `models` is /v1/models."""

    def __init__(self, chat: Callable[[dict, int], Reply], models: dict | None = None, port: int = 0) -> None:
        self.chat, self.models = chat, models or MODELS
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                models = self.path.endswith("/models")
                self._send(Reply(body=upstream.models) if models else Reply(404, {"error": "no"}))

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with upstream._lock:
                    n = len(upstream.requests)
                    upstream.requests.append(body)
                self._send(upstream.chat(body, n))

            def _send(self, reply: Reply):
                time.sleep(reply.delay)
                if reply.events is None:
                    data = json.dumps(reply.body).encode()
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(reply.status)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for e in reply.events:
                    payload = e if isinstance(e, str) else json.dumps(e)
                    self.wfile.write(f"data: {payload}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that gave up: not news
                pass

        Server.allow_reuse_address = True
        self.server = Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> "FakeUpstream":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
