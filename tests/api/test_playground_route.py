"""The playground's files over real HTTP, without a browser: `/` and its assets are public even with
API keys on (the API calls are not), the page carries a self-only Content-Security-Policy, every
asset it names is served from this origin, nothing in the files points at another origin, and a
built wheel ships them.

    .venv/bin/python -m pytest -q tests/api/test_playground_route.py
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser

import httpx
import pytest

from app.api.protocol_refine import RefineRequest
from app.api.routes.playground import STATIC_DIR
from app.refine.feedback import DEFAULT_FEEDBACK
from tests.servers import ROOT, start_server, stop_server

KEY = "k-playground-0123456789"


@pytest.fixture(scope="module")
def keyed():
    proc, url, _log = start_server({"RISE_API_KEYS": KEY, "RISE_MAX_TURNS_CAP": "7", "RISE_MAX_SAMPLES_CAP": "6"})
    try:
        yield url
    finally:
        stop_server(proc)


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = self.inline_styles = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self._in_script = "src" not in a
        for name in ("src", "href"):
            if a.get(name):
                self.urls.append(a[name])
        if "style" in a or tag == "style":
            self.inline_styles += 1
        if any(k.startswith("on") for k in a):
            self.inline_scripts += 1

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False


def test_the_page_is_public_with_keys_on_and_the_api_is_not(keyed):
    page = httpx.get(keyed + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>rise-serve playground</title>" in page.text
    assert httpx.get(keyed + "/v1/models").status_code == 401
    assert httpx.get(keyed + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(keyed + "/v1/verifiers").status_code == 401  # the picker's list is the API's
    assert httpx.get(keyed + "/v1/verifiers", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200


def test_the_page_has_a_self_only_content_security_policy(keyed):
    headers = httpx.get(keyed + "/").headers
    policy = dict(p.strip().split(" ", 1) for p in headers["content-security-policy"].split(";"))
    for directive in ("default-src", "script-src", "style-src", "connect-src", "img-src"):
        assert policy[directive] == "'self'", (directive, policy)
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert headers["x-content-type-options"] == "nosniff"
    assert "unsafe" not in headers["content-security-policy"]


def test_every_asset_the_page_names_is_served_here_without_a_key(keyed):
    parser = _Assets()
    parser.feed(httpx.get(keyed + "/").text)
    assert parser.inline_scripts == 0 and parser.inline_styles == 0  # the CSP would block them anyway
    local = [u for u in parser.urls if u.startswith("/")]
    assert sorted(local) == sorted(parser.urls), f"non-local URLs in the page: {parser.urls}"
    assert {"/static/app.js", "/static/playground.css", "/docs", "/metrics"} <= set(local)
    assert httpx.get(keyed + "/docs").status_code == 200 and httpx.get(keyed + "/metrics").status_code == 200
    for url in local:
        if url.startswith("/static/"):
            r = httpx.get(keyed + url)
            assert r.status_code == 200, url
            assert r.headers["x-content-type-options"] == "nosniff"
    js = httpx.get(keyed + "/static/api.js")
    assert "javascript" in js.headers["content-type"]  # module scripts run only with a JS type
    assert httpx.get(keyed + "/static/nope.js").status_code == 404
    assert httpx.get(keyed + "/static/../config.py").status_code == 404


def test_playground_json_says_keys_are_on_and_gives_the_limits_but_no_key(keyed):
    r = httpx.get(keyed + "/playground.json")
    assert r.status_code == 200
    body = r.json()
    assert body["keys_required"] is True
    assert body["limits"]["max_turns"] == 7 and body["limits"]["samples_per_turn"] == 6
    assert KEY not in r.text
    # the defaults of the fields the form may leave out: the API's, RISE's sentence, the server's task
    defaults = body["defaults"]
    assert defaults["feedback"] == DEFAULT_FEEDBACK and defaults["task"] == "synthetic"
    assert (defaults["tie_break"], defaults["top_p"]) == (RefineRequest.model_fields["tie_break"].default,
                                                          RefineRequest.model_fields["top_p"].default)


def test_static_requests_do_not_use_refinement_slots_or_route_labels(keyed):
    for _ in range(3):
        assert httpx.get(keyed + "/static/render.js").status_code == 200
    metrics = httpx.get(keyed + "/metrics").text
    assert "/static/render.js" not in metrics  # files are counted under "other", not one label each


def test_no_file_of_the_playground_names_another_origin():
    """No CDN, no web font, no analytics: every URL in the files is relative to this origin (the
    SVG namespace is a name, not a fetch)."""
    files = sorted(p for p in STATIC_DIR.iterdir() if p.is_file())
    assert {p.name for p in files} >= {"index.html", "app.js", "api.js", "render.js", "playground.css", "favicon.svg"}
    for path in files:
        text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
        assert "@import" not in text and "innerHTML" not in text and "insertAdjacentHTML" not in text, path.name
        assert "localStorage" not in text and "document.cookie" not in text, path.name


@pytest.mark.slow
def test_a_built_wheel_ships_the_playground(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "app", src / "app", ignore=shutil.ignore_patterns("__pycache__"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    [wheel] = (tmp_path / "dist").glob("rise_serve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in STATIC_DIR.iterdir():
        assert f"app/api/static/{path.name}" in names, path.name
