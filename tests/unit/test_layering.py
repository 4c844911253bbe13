"""The client side loads no server package, and the command line loads no door it does not run:
checked in a fresh interpreter, since this test process has long imported the server. (The
import contracts in pyproject.toml check the same statically; this checks what really loads,
lazy imports in conveyor/__init__.py and the commands included.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_PACKAGES = ["fastapi", "uvicorn", "starlette", "asyncpg", "grpc"]
# What `conveyor worker` never uses on the store: the HTTP app, gRPC, the auth and rate-limit
# stack, Redis, Kafka. Every worker process boots through conveyor.cli.main, so each of these
# would cost every boot (the fault tests boot dozens) CPU for nothing: about 1 s of 2.
WORKER_UNUSED = ["fastapi", "grpc", "jwt", "argon2", "limits", "redis", "aiokafka", "httpx"]


def loaded_after(statement: str, packages: list[str] = SERVER_PACKAGES) -> list[str]:
    """Which of `packages` (top-level names) are in sys.modules after `statement` runs."""
    code = (
        "import json, sys\n"
        f"{statement}\n"
        f"server = set({packages!r})\n"
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


def test_the_command_line_loads_only_what_a_worker_needs() -> None:
    # The commands that serve HTTP, gRPC or manage users import their stack when they run.
    assert loaded_after("import conveyor.cli.main", WORKER_UNUSED) == []
