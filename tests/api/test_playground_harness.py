"""The harness of the playground's browser tests (no tests here): Debian's Chromium driven by
Playwright for Python, real `rise serve` processes on the shipped model, pages that record every
request they make, and helpers that fill the form and wait for a run.

    .venv/bin/python -m pytest -q tests/api/test_playground_browser.py tests/api/test_playground_keys_feedback.py

Where Chromium or Playwright is missing every browser test is SKIPPED with the reason (make
system-deps installs Chromium; Playwright's own browser download is never used).
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from tests.servers import start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
Q = "Sam has 23 apples. He buys 17 more. Then he gives away 9. How many apples does Sam have now?"
KEY = "k-browser-0123456789"
RUN_TIMEOUT_MS = 180_000  # a whole refinement on a busy 2-core machine; never a speed assertion


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as factory
    except ImportError as e:
        pytest.skip(f"!!! SKIPPED: playwright is not installed ({e}); `pip install -e '.[test]'` brings it")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"!!! SKIPPED: {CHROMIUM} is missing; `make system-deps` installs Debian's chromium "
                    "(apt-get install chromium)")
    return factory


@pytest.fixture(scope="module")
def browser():
    with sync_playwright()() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def server(env: dict[str, str]):
    proc, url, log = start_server(env)
    try:
        yield url
    finally:
        stop_server(proc)


class Opened:
    """A page on `url` with every request it makes recorded (`requests`: URL, method, headers,
    body) and its script errors (`errors`)."""

    def __init__(self, context, page, url: str) -> None:
        self.context, self.page, self.url = context, page, url
        self.requests: list[dict] = []
        self.errors: list[str] = []
        context.on("request", lambda r: self.requests.append(
            {"url": r.url, "method": r.method, "headers": r.headers, "body": r.post_data}))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def foreign(self) -> list[str]:
        return [r["url"] for r in self.requests if not r["url"].startswith(self.url + "/")]

    def refine_bodies(self) -> list[dict]:
        import json
        return [json.loads(r["body"]) for r in self.requests if r["url"] == self.url + "/v1/refine"]


@contextmanager
def opened(browser, url: str, *, init_script: str | None = None, **context_args):
    """A fresh browser context (own sessionStorage and cookies) with the playground open. On a
    clean exit: nothing was fetched from another origin and no script failed."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **context_args})
    try:
        page = context.new_page()
        tab = Opened(context, page, url)
        if init_script:
            page.add_init_script(init_script)
        page.goto(url + "/")
        yield tab
        assert tab.foreign() == [], f"requests left the origin: {tab.foreign()}"
        assert tab.errors == [], f"script errors: {tab.errors}"
    finally:
        context.close()


def fill(page, question: str = Q, **settings) -> None:
    """The question and any of the form's fields by id (max_turns, samples_per_turn, temperature,
    window, aggregation, early_stop, agree_turns, max_tokens, max_total_tokens, seed, reference)."""
    page.fill("#question", question)
    for name, value in settings.items():
        if name in ("window", "aggregation", "early_stop"):
            page.select_option(f"#{name}", str(value))
        else:
            page.fill(f"#{name}", str(value))


def run(page, where: str = "#single-view", button: str = "#run"):
    """Click `button` and wait until every run under `where` has finished (done or error)."""
    page.click(button)
    page.locator(f"{where} .run").first.wait_for()
    for i in range(page.locator(f"{where} .run").count()):
        page.locator(f"{where} .run").nth(i).and_(
            page.locator(".run[data-state=done], .run[data-state=error]")).wait_for(timeout=RUN_TIMEOUT_MS)
    return page.locator(f"{where} .run")
