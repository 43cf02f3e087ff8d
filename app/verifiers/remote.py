"""A verifier endpoint as an oracle: POST {question, answer, text, turn} (and the request's `params`,
when it gave any) to the operator's URL, read back {correct: bool, feedback?: str}. Every call has a
time cap (the endpoint's `timeout_s`, within the request's deadline); connections are pooled by the
registry's client; redirects are not followed. No verdict in time, a failure or a reply of another
shape raises `Unchecked` (the registry turns it into an unchecked turn and counts it).

    .venv/bin/python -m pytest -q tests/api/test_verifiers.py
"""

from __future__ import annotations

import asyncio
import json

import httpx

from app.refine.oracles import Verdict
from app.verifiers.endpoints import VerifierEndpoint
from app.verifiers.errors import CheckFailed, CheckTimeout, Garbage

MAX_REPLY_BYTES = 64 * 1024
MAX_FEEDBACK_CHARS = 4000


class RemoteVerifier:
    def __init__(self, endpoint: VerifierEndpoint, client: httpx.AsyncClient, params: dict | None = None,
                 deadline=None) -> None:
        self.endpoint, self.client, self.params, self.deadline = endpoint, client, params or None, deadline

    async def judge(self, question: str, answer: str | None, text: str, turn: int) -> Verdict:
        body = {"question": question, "answer": answer, "text": text, "turn": turn}
        if self.params:
            body["params"] = self.params
        limit = self.endpoint.timeout_s
        if self.deadline is not None:
            limit = min(limit, self.deadline.remaining())
        if limit <= 0:
            raise CheckTimeout("the request's deadline has passed")
        try:
            status, raw = await asyncio.wait_for(self._post(body, limit), limit)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            raise CheckTimeout(f"no answer within {limit:.3g}s") from None
        except httpx.HTTPError as e:
            raise CheckFailed(f"call failed: {type(e).__name__}") from None
        if not 200 <= status < 300:
            raise CheckFailed(f"answered HTTP {status}")
        return parse_reply(raw)

    async def _post(self, body: dict, limit: float) -> tuple[int, bytes]:
        async with self.client.stream("POST", self.endpoint.url, json=body, headers=self.endpoint.headers,
                                      timeout=limit) as r:
            chunks, size = [], 0
            async for chunk in r.aiter_bytes():
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise Garbage(f"the reply is larger than {MAX_REPLY_BYTES} bytes")
                chunks.append(chunk)
            return r.status_code, b"".join(chunks)


def parse_reply(raw: bytes) -> Verdict:
    """{"correct": true|false, "feedback": "..."|null (optional)} -> Verdict; anything else: Garbage."""
    try:
        reply = json.loads(raw)
    except (ValueError, RecursionError):
        raise Garbage("the reply is not JSON") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("correct"), bool):
        raise Garbage('the reply is not an object with a boolean "correct"')
    feedback = reply.get("feedback")
    if feedback is not None and not isinstance(feedback, str):
        raise Garbage('"feedback" is not a string')
    if feedback is not None and any(0xD800 <= ord(c) <= 0xDFFF or (ord(c) < 32 and c not in "\n\t\r")
                                    for c in feedback):
        raise Garbage('"feedback" holds control characters or lone surrogates')
    feedback = feedback[:MAX_FEEDBACK_CHARS] if feedback and feedback.strip() else None
    return Verdict(reply["correct"], feedback)
