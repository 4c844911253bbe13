from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability.stack import Stack, migrate
from tests.transport.conftest import redis_server  # noqa: F401 (the private redis-server fixture)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Stack]:
    """A lone `conveyor server` (auth off) on a migrated SQLite file; not yet ready."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path}/conveyor.db")
    migrate(stack.store_url)
    stack.spawn("server", "server", "--port", str(stack.api_port))
    try:
        yield stack
    finally:
        stack.stop()
