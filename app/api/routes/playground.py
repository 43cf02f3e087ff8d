"""The web playground at `/`: static HTML, CSS and JS shipped inside the package
(`app/api/static/`, no build step, nothing fetched from another origin), and the small public
settings the page needs before its first API call (`/playground.json`).

    make run   # then open http://127.0.0.1:8000/
    .venv/bin/python -m pytest -q tests/api/test_playground_route.py tests/api/test_playground_browser.py
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

from app.api.deps import SettingsDep
from app.api.protocol_refine import RefineRequest
from app.refine.feedback import DEFAULT_FEEDBACK

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

# The page loads its own files only and talks to its own origin only: no inline script or style, no
# framing, no plugins. Model output is put in the page as text, never as HTML (app/api/static/render.js).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/playground.json")
async def page_settings(settings: SettingsDep, request: Request) -> dict:
    """What the page shows before it calls the API: whether keys are needed (never a key), the
    limits a request may ask for, so that the form's fields carry them, and the defaults of the
    fields it leaves out (RISE's feedback sentence, the task, the tie rule, top_p)."""
    return {"keys_required": bool(request.app.state.api_keys),
            "limits": {"max_turns": settings.max_turns_cap, "samples_per_turn": settings.max_samples_cap,
                       "max_tokens": settings.max_tokens_cap, "question_chars": settings.max_question_chars},
            "defaults": {"max_turns": settings.default_turns, "max_tokens": settings.default_max_tokens,
                         "task": settings.task, "feedback": DEFAULT_FEEDBACK,
                         # a left-out temperature by the server's one rule (app/refine/temperature.py)
                         "temperature": {"one_sample": 0.0, "several_samples": settings.sampled_temperature},
                         **{name: RefineRequest.model_fields[name].default for name in ("tie_break", "top_p")}}}


class _StaticFiles(StaticFiles):
    """The page's assets, each with the page's headers: `nosniff` (a script is run only when served
    as one), and the CSP and no-framing, since `/static/index.html` is the page itself."""

    async def get_response(self, path: str, scope):
        response = await super().get_response(path, scope)
        for name, value in PAGE_HEADERS.items():
            if name != "Cache-Control":  # assets keep StaticFiles' ETag and Last-Modified
                response.headers.setdefault(name, value)
        return response


def static_files() -> StaticFiles:
    """Mounted at `/static` by `app.api.main.create_app`."""
    return _StaticFiles(directory=STATIC_DIR)
