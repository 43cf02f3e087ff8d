"""Every relative link in the README, docs/ and the model cards leads somewhere: the file (or
folder) exists, and an anchor names a heading of the target page (GitHub's heading ids).

    .venv/bin/python -m pytest -q tests/test_docs_links.py
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("models/*/README.md")])
MD = MarkdownIt("commonmark").enable("table")


def parse(path: Path):
    return MD.parse(path.read_text(encoding="utf-8"))


def slug(text: str) -> str:
    """GitHub's id for a heading: lower case, punctuation dropped (but `-` and `_`), spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The ids of a page's headings, with GitHub's -1, -2 … for repeats."""
    tokens, seen, out = parse(path), {}, set()
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            text = "".join(c.content for c in tokens[i + 1].children if c.type in ("text", "code_inline"))
            base = slug(text)
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    """Every link and image target in a page (inline, reference and in tables)."""
    out = []
    for token in parse(path):
        for child in token.children or []:
            if child.type == "link_open":
                out.append(child.attrGet("href"))
            elif child.type == "image":
                out.append(child.attrGet("src"))
    return out


def test_the_slug_is_githubs():
    assert slug("Self-correction without an oracle: the re-check recipe (issue 14; the default "
                "models/rise-synth)") == ("self-correction-without-an-oracle-the-re-check-recipe-issue-14-"
                                          "the-default-modelsrise-synth")
    assert slug("POST /v1/refine") == "post-v1refine"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path):
    broken = []
    for href in links(page):
        parts = urlsplit(href)
        if parts.scheme or parts.netloc or href.startswith("/"):
            continue  # another site, or a route of the running server
        target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
        if not target.exists():
            broken.append(f"{href}: no such file")
        elif parts.fragment and target.suffix == ".md" and unquote(parts.fragment) not in anchors(target):
            broken.append(f"{href}: no heading #{parts.fragment} in {target.relative_to(ROOT)}")
    assert broken == [], "\n".join(broken)


def test_the_pages_are_found():
    names = {str(p.relative_to(ROOT)) for p in PAGES}
    assert {"README.md", "docs/api.md", "docs/operations.md", "docs/results/README.md"} <= names
