"""A test run changes no tracked file: the dashboard test's screenshots go to a temporary
folder unless scripts/screenshots points them at docs/screenshots, and every picture the README
shows is one that test takes."""

from __future__ import annotations

import re
from pathlib import Path

from tests.dashboard.browser import screenshot_dir

REPO = Path(__file__).resolve().parents[2]
BROWSER_TEST = "tests/dashboard/test_dashboard.py"


def test_screenshots_go_outside_the_repository_by_default() -> None:
    default = screenshot_dir({}).resolve()
    assert not default.is_relative_to(REPO), default
    assert screenshot_dir({"CONVEYOR_SCREENSHOT_DIR": "/x/y"}) == Path("/x/y")


def test_scripts_screenshots_refreshes_the_readme_pictures() -> None:
    script = (REPO / "scripts" / "screenshots").read_text()
    assert 'CONVEYOR_SCREENSHOT_DIR="$PWD/docs/screenshots"' in script
    assert BROWSER_TEST in script
    taken = set(re.findall(r'SHOTS / "([\w-]+\.png)"', (REPO / BROWSER_TEST).read_text()))
    shown = set(re.findall(r"docs/screenshots/([\w-]+\.png)", (REPO / "README.md").read_text()))
    assert shown and shown <= taken, shown - taken
    for name in shown:
        assert (REPO / "docs" / "screenshots" / name).is_file(), name
