"""Where a user first asks a question, the shipped model says what it knows: `/v1/models`' card
carries a note that the shipped model knows only its synthetic arithmetic and how to serve a real
model; a model of the user's own has no such note.

    .venv/bin/python -m pytest -q tests/api/test_models_card.py
"""

from __future__ import annotations

import shutil

import httpx

from app.config import Settings
from tests.conftest import BASE_MODEL


def test_the_shipped_models_card_says_it_knows_only_synthetic_arithmetic(server):
    [card] = httpx.get(f"{server}/v1/models", timeout=30).json()["data"]
    note = card["description"]
    assert "synthetic arithmetic" in note and "--model" in note, note


def test_a_model_of_your_own_has_no_note(tmp_path):
    from app.api.routes.health import model_note

    mine = tmp_path / "my-model"
    shutil.copytree(BASE_MODEL, mine, ignore=shutil.ignore_patterns("eval*"))
    assert model_note(Settings(model=BASE_MODEL)) is not None
    assert model_note(Settings(model=mine)) is None
    assert model_note(Settings(engine="openai", base_url="http://127.0.0.1:9/v1")) is None
