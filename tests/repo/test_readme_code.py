"""Every code block in the README runs as written, in order, as a newcomer would paste them.

Blocks run in one fresh folder with `conveyor` (and `.venv/bin/conveyor`) on PATH and the store
`conveyor dev` makes (`conveyor-data/conveyor.db`, migrated): `sh`/`bash` blocks through
`bash -e`, `python` blocks as a script (written to the path a first-line `# path.py` comment
names, so a later block can import it). Must exit 0.

A block that cannot run here (a server that runs until stopped, one that needs a running
server, a prompt) says so on the line just above its fence, with the reason:

    <!-- readme-test: skip (needs a running server) -->

Any other block in another language, or a skip without a reason, fails this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
FENCE = re.compile(
    r"(?:^<!--\s*readme-test:\s*(?P<mark>.*?)\s*-->\n)?^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
SKIP = re.compile(r"skip \((?P<reason>.+)\)")
RUNNABLE = {"python", "sh", "bash"}


@dataclass
class Block:
    line: int
    lang: str
    body: str
    skip: str | None  # the reason

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks(text: str) -> list[Block]:
    out = []
    for m in FENCE.finditer(text):
        skip = None
        if m["mark"] is not None:
            found = SKIP.fullmatch(m["mark"])
            assert found, f"README.md:{text.count(chr(10), 0, m.start()) + 1}: {m['mark']!r}"
            skip = found["reason"]
        line = text.count("\n", 0, m.start("lang")) + 1
        out.append(Block(line, m["lang"], m["body"], skip))
    return out


def test_the_block_parser() -> None:
    text = "x\n```sh\necho 1\n```\n<!-- readme-test: skip (a server) -->\n```python\nx()\n```\n"
    assert [(b.line, b.lang, b.body, b.skip) for b in blocks(text)] == [
        (2, "sh", "echo 1\n", None),
        (6, "python", "x()\n", "a server"),
    ]
    with pytest.raises(AssertionError):
        blocks("<!-- readme-test: skip -->\n```sh\nx\n```\n")


def newcomer_env(home: Path) -> dict[str, str]:
    """The test's environment less its CONVEYOR_* settings, with `conveyor` on PATH."""
    bin_dir = home / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    conveyor = bin_dir / "conveyor"
    conveyor.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m conveyor.cli "$@"\n')
    conveyor.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(block: Block, home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if block.lang == "python":
        first = block.body.splitlines()[0]
        named = re.fullmatch(r"#\s*([\w/]+\.py)", first)
        script = home / (named[1] if named else f"readme_{block.line}.py")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(block.body)
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-e", "-c", block.body]
    return subprocess.run(cmd, cwd=home, env=env, capture_output=True, text=True, timeout=300)


def test_readme_code_blocks_run_as_written(tmp_path: Path) -> None:
    found = blocks(README.read_text())
    unknown = [str(b) for b in found if b.skip is None and b.lang not in RUNNABLE]
    assert not unknown, f"neither runnable nor marked: {unknown}"
    runnable = [b for b in found if b.skip is None]
    assert len(runnable) >= 3, "the README's examples are meant to run"

    env = newcomer_env(tmp_path)
    # What `scripts/dev` has done before the README's first commands: the dev store exists.
    subprocess.run(["conveyor", "migrate"], cwd=tmp_path, env=env, check=True, capture_output=True)
    for block in runnable:
        done = run(block, tmp_path, env)
        assert done.returncode == 0, f"{block} failed:\n{done.stdout}\n{done.stderr}"
