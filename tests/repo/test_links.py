"""Every relative link in the README and docs/ resolves to a file or folder inside the
repository, so none is dead in a fresh clone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)


def relative_links(text: str) -> list[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)  # code blocks
    return [t for t in LINK.findall(text) if not EXTERNAL.match(t)]


def test_the_link_pattern() -> None:
    text = "[a](docs/x.md) ![b](img.png) [c](https://e.org) [d](#top) [e](../out.md#s)\n"
    text += "```\n[f](in-code.md)\n```\n"
    assert relative_links(text) == ["docs/x.md", "img.png", "../out.md#s"]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_relative_links_resolve_inside_the_repository(page: Path) -> None:
    links = relative_links(page.read_text())
    for link in links:
        target = (page.parent / link.split("#", 1)[0]).resolve()
        assert target.is_relative_to(REPO), f"{link} leaves the repository"
        assert target.exists(), f"{link} does not exist"
