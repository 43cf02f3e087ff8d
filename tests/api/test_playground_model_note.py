"""The playground says, right under its question box, that the shipped model knows only its
synthetic arithmetic (from the `/v1/models` card), at desktop and phone sizes, in Debian's Chromium.

    .venv/bin/python -m pytest -q tests/api/test_playground_model_note.py
"""

from __future__ import annotations

import pytest

from tests.api.test_playground_harness import browser, opened  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, {"width": 390, "height": 844}],
                         ids=["desktop", "phone"])
def test_the_note_under_the_question_box(browser, server, viewport):
    with opened(browser, server, viewport=viewport) as tab:
        note = tab.page.locator("#model-note")
        note.wait_for(state="visible", timeout=30_000)
        assert "synthetic arithmetic" in note.inner_text() and "--model" in note.inner_text()
        question = tab.page.locator("#question").bounding_box()
        reference = tab.page.locator("#reference").bounding_box()
        box = note.bounding_box()
        assert question["y"] + question["height"] <= box["y"] < reference["y"], (question, box, reference)
