"""`/docs` (Swagger UI) and `/redoc` in a real browser (Debian's Chromium, Playwright) with no
network: every request that leaves 127.0.0.1 is aborted, as on a machine with no internet. Each page
must still render the API's routes, from assets the server itself serves (the installed
`fastapi-offline` package's Swagger UI and ReDoc builds), with no script error and no request
blocked or refused by the page's Content-Security-Policy.

    .venv/bin/python -m pytest -q tests/api/test_docs_offline_browser.py
"""

from __future__ import annotations

from urllib.parse import urlparse

import httpx
import pytest

from tests.api.test_playground_harness import browser  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

ROUTES = ("/v1/refine", "/v1/chat/completions", "/v1/refinements/{trace_id}")
# ReDoc's "API docs by Redocly" logo is an image on Redocly's CDN: the CSP refuses it (nothing leaves
# the server) and ReDoc drops the image when it fails to load
REFUSED_OK = "https://cdn.redoc.ly/redoc/logo-mini.svg"
# the page's visible text with Swagger UI's zero-width break hints (after each "/") taken out
SHOWN = "document.body.innerText.replace(/[\\u200b\\u00ad]/g, '')"


class Offline:
    """A page in a fresh context where only 127.0.0.1 answers: what tried to leave (`blocked`), its
    script errors and its console errors (a CSP refusal is one)."""

    def __init__(self, browser) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._only_local)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and REFUSED_OK not in m.text and self.errors.append(m.text))

    def _only_local(self, route) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort("internetdisconnected")

    def shown(self) -> str:
        return self.page.evaluate(SHOWN)  # evaluated by the browser's tools, not by the page (no eval under its CSP)

    def wait_until_shown(self, text: str, timeout_s: float = 60) -> bool:
        for _ in range(int(timeout_s * 4)):
            if text in self.shown():
                return True
            self.page.wait_for_timeout(250)
        return False


@pytest.fixture
def offline(browser):  # noqa: F811 - the fixture imported above
    tab = Offline(browser)
    try:
        yield tab
    finally:
        tab.context.close()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_render_the_routes_with_no_network(server, offline, path):
    offline.page.goto(server + path)
    if not offline.wait_until_shown("/v1/chat/completions"):
        pytest.fail(f"{path} rendered no routes offline; it tried {offline.blocked}; errors {offline.errors}; "
                    f"text {offline.shown()[:300]!r}")
    shown = offline.shown()
    assert all(route in shown for route in ROUTES), shown[:2000]
    assert "rise-serve" in shown
    assert offline.blocked == [], f"{path} reached beyond the server: {offline.blocked}"
    assert offline.errors == [], offline.errors


def test_swagger_ui_tries_a_request_against_the_server(server, offline):
    """The docs page's scripts may call the API on their own origin ("Try it out"): the page's CSP
    allows it, and nothing else."""
    offline.page.goto(server + "/docs")
    offline.page.locator("#operations-health-health_health_get .opblock-summary").click(timeout=60_000)
    offline.page.get_by_role("button", name="Try it out").click()
    offline.page.get_by_role("button", name="Execute").click()
    offline.page.locator(".responses-table .response .response-col_status", has_text="200").first.wait_for(
        timeout=60_000)
    assert offline.blocked == [] and offline.errors == [], (offline.blocked, offline.errors)


def test_docs_pages_and_assets_come_from_the_server(server):
    for path in ("/docs", "/redoc"):
        r = httpx.get(server + path, timeout=30)
        assert r.status_code == 200 and "cdn." not in r.text and "https://" not in r.text, r.text[:500]
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
