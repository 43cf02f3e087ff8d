"""The playground's API key and feedback in a real browser (Debian's Chromium, Playwright) against
real `rise serve` processes: with `RISE_API_KEYS` the key field appears, a run without the key shows
the 401, the key lives in sessionStorage only and goes out as a bearer header; with
`RISE_TRACES_URL` the thumbs and "the right answer was …" are stored with the trace; without traces
there is no feedback box. Also writes the README's screenshot (docs/playground.png with
RISE_UPDATE_SCREENSHOT=1).

    .venv/bin/python -m pytest -q tests/api/test_playground_keys_feedback.py
"""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from tests.api.test_playground_harness import KEY, Q, browser, fill, opened, run, server  # noqa: F401 - fixture
from tests.servers import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keyed():
    with server({"RISE_API_KEYS": KEY}) as url:  # traces off
        yield url


def test_with_keys_on_the_key_field_shows_and_the_key_stays_in_session_storage(browser, keyed):
    with opened(browser, keyed) as tab:
        page = tab.page
        page.locator("#key-box").wait_for()  # shown before any call failed
        fill(page, max_turns=2, temperature=0)
        [view] = run(page).all()
        assert view.locator(".run-error").inner_text().startswith("401 unauthorized: missing or invalid API key")
        page.fill("#api-key", KEY)
        page.press("#api-key", "Enter")  # stays on the page, keeps the key
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        assert view.locator(".turn").count() >= 1 and view.locator(".tally tr").count() >= 1
        assert page.evaluate("sessionStorage.getItem('rise-serve.api-key')") == KEY
        assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""
        assert tab.context.cookies() == []
        refines = [r for r in tab.requests if r["url"] == keyed + "/v1/refine"]
        assert [r["headers"].get("authorization") for r in refines] == [None, f"Bearer {KEY}"]
        assert KEY not in (refines[-1]["body"] or "")
        assert page.locator(".feedback").count() == 0  # traces are off here (409): no feedback box
        assert page.locator("#model").inner_text() == "model: rise-synth"  # /v1/models with the key

        page.reload()  # the same tab keeps its session
        assert page.input_value("#api-key") == KEY
        page.click("#forget-key")
        assert page.evaluate("sessionStorage.length") == 0

    with opened(browser, keyed) as other:  # another browsing session starts without it
        other.page.locator("#key-box").wait_for()
        assert other.page.input_value("#api-key") == ""


def trace(url: str, rid: str) -> dict:
    r = httpx.get(f"{url}/v1/refinements/{rid}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_feedback_is_stored_with_the_trace(browser, tmp_path):
    db = tmp_path / "traces.db"
    with server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_TRACES_KEEP_REFERENCES": "true"}) as url, \
            opened(browser, url) as tab:
        page = tab.page
        fill(page, max_turns=3, temperature=0.8, seed=4)
        [view] = run(page).all()
        rid = view.get_attribute("data-refinement-id")
        assert trace(url, rid)["feedback"] is None
        box = view.locator(".feedback")
        box.locator(".thumb.down").click()
        assert box.locator(".thumb.down").get_attribute("aria-pressed") == "true"
        box.locator(".reference").fill("32")
        box.locator(".comment").fill("he gave away 8, not 9")
        box.locator(".send").click()
        page.locator(".feedback[data-sent=true]").wait_for()
        assert box.locator(".feedback-status").inner_text().startswith("thank you")
        shot = tmp_path / "playground.png"
        page.screenshot(path=str(shot), full_page=True)
        posts = [r for r in tab.requests if r["url"] == f"{url}/v1/refinements/{rid}/feedback"]
        assert [r["method"] for r in posts] == ["POST"]

        stored = trace(url, rid)
        feedback = stored["feedback"]
        assert feedback["rating"] == -1 and feedback["comment"] == "he gave away 8, not 9"
        assert feedback["reference_given"] is True  # kept for training, never shown
        assert stored["question"] == Q
    if os.environ.get("RISE_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, ROOT / "docs" / "playground.png")


def test_feedback_where_references_are_not_kept_says_so_and_sends_the_rest(browser, tmp_path):
    db = tmp_path / "traces.db"
    with server({"RISE_TRACES_URL": f"sqlite:///{db}"}) as url, opened(browser, url) as tab:
        page = tab.page
        fill(page, max_turns=2, temperature=0)
        [view] = run(page).all()
        box = view.locator(".feedback")
        box.locator(".thumb.up").click()
        box.locator(".reference").fill("31")
        box.locator(".send").click()
        status = box.locator(".feedback-status")
        status.filter(has_text="409").wait_for()
        assert "references are not stored on this server" in status.inner_text()
        assert box.locator(".right-answer").is_hidden()
        box.locator(".send").click()
        page.locator(".feedback[data-sent=true]").wait_for()
        feedback = trace(url, view.get_attribute("data-refinement-id"))["feedback"]
        assert feedback["rating"] == 1 and feedback["reference_given"] is False
