"""The client side loads no server package: checked in a fresh interpreter, since this test
process has long imported the server. (The import contracts in pyproject.toml check the same
statically; this checks what really loads, lazy imports in conveyor/__init__.py included.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_PACKAGES = ["fastapi", "uvicorn", "starlette", "asyncpg", "aiosqlite", "grpc"]


def loaded_after(statement: str) -> list[str]:
    """The server packages (top-level names) in sys.modules after `statement` runs."""
    code = (
        "import json, sys\n"
        f"{statement}\n"
        f"server = set({SERVER_PACKAGES!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & server)))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "statement",
    ["import conveyor.client", "from conveyor import Client", "from conveyor import AsyncClient"],
)
def test_the_client_loads_no_server_package(statement: str) -> None:
    assert loaded_after(statement) == []


def test_the_check_sees_a_server_package() -> None:
    # Guards the test above against passing vacuously (say, a broken print).
    assert "fastapi" in loaded_after("import conveyor.api")
