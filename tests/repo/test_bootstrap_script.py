"""scripts/bootstrap picks its installer without installing anything: uv on PATH, else the uv it
fetches once into the cache folder, else pip when asked; and a .venv whose stamp matches
pyproject.toml and constraints.txt is left alone, at once and silently. (The install itself is
timed on a fresh clone in benchmarks/RESULTS.md, "First start".)"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("cat", "cut", "dirname", "sha256sum")
PYTHON = Path(sys.executable).resolve()  # the interpreter itself, not a venv's or a shim


def sandbox(tmp_path: Path, *, uv: bool = False) -> tuple[Path, dict[str, str]]:
    """A copy of the repository's install inputs, and an environment whose PATH has only the
    tools the script needs (and a stand-in `uv` when asked)."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    for name in ("scripts/bootstrap", "pyproject.toml", "constraints.txt"):
        shutil.copy2(REPO / name, root / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(PYTHON)
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    if uv:
        (bin_dir / "uv").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "uv").chmod(0o755)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c")}
    return root, env


def bootstrap(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/bash", str(root / "scripts" / "bootstrap"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_plan_prefers_uv_on_path(tmp_path: Path) -> None:
    root, env = sandbox(tmp_path, uv=True)
    out = bootstrap(root, env, "--plan")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"uv: {tmp_path / 'bin' / 'uv'}\n"


def test_plan_fetches_uv_into_the_cache_folder_else(tmp_path: Path) -> None:
    root, env = sandbox(tmp_path)
    out = bootstrap(root, env, "--plan")
    assert out.returncode == 0, out.stderr
    uv_home = tmp_path / "c" / "conveyor" / "uv-"
    assert out.stdout.startswith("uv ") and f"fetched into {uv_home}" in out.stdout
    assert not (tmp_path / "c").exists()  # a plan changes nothing


def test_plan_uses_pip_when_asked(tmp_path: Path) -> None:
    root, env = sandbox(tmp_path, uv=True)
    out = bootstrap(root, {**env, "CONVEYOR_INSTALLER": "pip"}, "--plan")
    assert out.stdout == "pip: CONVEYOR_INSTALLER=pip\n"


def test_an_up_to_date_venv_is_left_alone(tmp_path: Path) -> None:
    # This uv and this .venv's python fail at once: an install attempt shows, and changes nothing.
    root, env = sandbox(tmp_path, uv=True)
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text("#!/bin/sh\nexit 1\n")
    (venv_bin / "python").chmod(0o755)
    inputs = (root / "pyproject.toml").read_bytes() + (root / "constraints.txt").read_bytes()
    stamp = root / ".venv" / ".conveyor-installed"
    stamp.write_text(hashlib.sha256(inputs).hexdigest() + "\n")
    out = bootstrap(root, env)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")

    (root / "constraints.txt").write_text("changed==1\n")  # now it must install: and says so
    out = bootstrap(root, env)
    assert out.returncode != 0
    assert "installing Conveyor and its dev tools into .venv with uv" in out.stderr
    assert "uv failed; trying pip" in out.stderr
