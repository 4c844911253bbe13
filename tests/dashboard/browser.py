"""Headless Chromium for the browser tests: Debian's binary, driven by Playwright (never
`playwright install`, which would download a browser build of its own)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.conftest import require_services

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


def chromium() -> Any:
    """Playwright's `async_playwright`, once both it and Chromium are known to be there."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:  # pragma: no cover - a dev dependency
        require_services("Playwright", f"the playwright package is not installed: {exc}")
        raise
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        require_services(
            "Chromium", "Debian's chromium is missing (scripts/services installs it as root)"
        )
    return async_playwright


def screenshot_dir(env: Mapping[str, str]) -> Path:
    """$CONVEYOR_SCREENSHOT_DIR (scripts/screenshots sets it to docs/screenshots), else a
    temporary folder: a test run changes no tracked file."""
    default = Path(tempfile.gettempdir()) / "conveyor-screenshots"
    return Path(env.get("CONVEYOR_SCREENSHOT_DIR") or default)
