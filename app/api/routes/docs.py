"""`/docs` (Swagger UI) and `/redoc` (ReDoc), with their scripts, styles and icon served by this
server from the installed `fastapi-offline` package (a kept PyPI package that ships both builds),
never from a CDN: the pages work on a machine with no internet. Each page carries a
Content-Security-Policy that lets it run its own scripts (the inline start-up script by its hash)
and call the API on this origin, and nothing else.

    .venv/bin/python -m pytest -q tests/api/test_docs_offline_browser.py
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs/assets"  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ASSET_DIR = Path(str(files("fastapi_offline") / "static"))

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)

router = APIRouter(include_in_schema=False)


def csp(html: str) -> str:
    """The page's policy: scripts from here and the page's own inline ones (by hash); styles may be
    inline (both UIs inject theirs); ReDoc's search runs in a worker made from a blob."""
    hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                     for s in _INLINE_SCRIPT.findall(html))
    return (f"default-src 'self'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _page(page: HTMLResponse) -> HTMLResponse:
    page.headers.update({"Content-Security-Policy": csp(page.body.decode()), "X-Content-Type-Options": "nosniff",
                         "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    app, root = request.app, request.scope.get("root_path", "")
    return _page(get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png", swagger_ui_parameters=app.swagger_ui_parameters))


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    app, root = request.app, request.scope.get("root_path", "")
    return _page(get_redoc_html(
        openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js", redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False))


def static_files() -> StaticFiles:
    """Mounted at ASSETS by `app.api.main.create_app`."""
    return StaticFiles(directory=ASSET_DIR)
