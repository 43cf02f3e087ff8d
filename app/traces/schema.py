"""The one table of stored refinements, and trace ids.

Ids are random (128 bits from `secrets`), prefixed with what made them: `rr-` for `/v1/refine`,
`chatcmpl-` for the chat API, `resp_` (OpenAI's own form) for the Responses API: the id of the
response is the id of the trace.

    python -c "from app.traces.schema import new_id; print(new_id('rr'))"
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

ID_PREFIXES = {"rr": "rr-", "chatcmpl": "chatcmpl-", "resp": "resp_"}  # prefix -> how an id starts
_ID = re.compile(r"^(rr-|chatcmpl-|resp_)[0-9a-f]{32}$")

metadata = MetaData()

traces = Table(
    "rise_traces", metadata,
    Column("id", String(48), primary_key=True),
    Column("created", Float, nullable=False),  # Unix seconds
    Column("key_id", String(32), nullable=True),  # sha256(key)[:12]; NULL when keys are off
    Column("model", String(200), nullable=False),
    Column("engine", String(32), nullable=False),
    Column("route", String(40), nullable=False),
    Column("question", Text, nullable=False),
    Column("final_answer", Text, nullable=True),
    Column("stop_reason", String(32), nullable=False),
    Column("body", Text, nullable=False),  # JSON: config, history, choices (each a result with its turns)
    Column("reference", Text, nullable=True),  # the oracle's reference, only with RISE_TRACES_KEEP_REFERENCES
    Column("fb_rating", Integer, nullable=True),
    Column("fb_comment", Text, nullable=True),
    Column("fb_reference", Text, nullable=True),  # "the right answer was ...", only with KEEP_REFERENCES
    Column("fb_at", Float, nullable=True),
    Index("ix_rise_traces_created", "created", "id"),
    Index("ix_rise_traces_key_created", "key_id", "created"),
    Index("ix_rise_traces_key_labelled", "key_id", "fb_at", "created"),  # retention's per-key counts and cuts
)


def new_id(prefix: str) -> str:
    """A trace id nobody can guess: `prefix-` (`resp_`) and 32 hex digits (128 random bits)."""
    if prefix not in ID_PREFIXES:
        raise ValueError(f"unknown trace id prefix {prefix!r}")
    return f"{ID_PREFIXES[prefix]}{secrets.token_hex(16)}"


def valid_id(value: str) -> bool:
    return bool(_ID.fullmatch(value))
