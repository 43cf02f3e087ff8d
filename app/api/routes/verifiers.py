"""`GET /v1/verifiers`: the verifiers a request may name in `verifier` (the playground's picker
reads it): the built-in checks with their parameters (a JSON Schema), and the operator's endpoints
(`RISE_VERIFIERS`) by name only, never their URL or headers.

    .venv/bin/python -m pytest -q tests/api/test_playground_history.py -k verifiers
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.verifiers.builtin import BUILTINS

router = APIRouter(tags=["verifiers"])


class VerifierInfo(BaseModel):
    name: str
    kind: Literal["builtin", "endpoint"] = Field(description="`builtin`: a check in the server; `endpoint`: the "
                                                             "operator's verifier service (RISE_VERIFIERS)")
    parameters: dict | None = Field(description="the built-in's parameters as a JSON Schema; null for an endpoint "
                                                "(its parameters go to it as given, under `params`)")


class VerifierList(BaseModel):
    object: Literal["list"] = "list"
    data: list[VerifierInfo]


@router.get("/v1/verifiers", response_model=VerifierList, summary="The verifiers a request may name")
async def list_verifiers(request: Request) -> dict:
    verifiers = getattr(request.app.state, "verifiers", None)
    endpoints = sorted(verifiers.endpoints) if verifiers is not None else []
    data = [{"name": name, "kind": "builtin", "parameters": _schema(model)} for name, model in BUILTINS.items()]
    data += [{"name": name, "kind": "endpoint", "parameters": None} for name in endpoints]
    return {"object": "list", "data": data}


def _schema(model) -> dict:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return schema
