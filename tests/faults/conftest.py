"""Fixtures of the fault suite: a history and a process set per test, and one private
PostgreSQL cluster for the session (each test gets a database of its own on it)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from conveyor import App
from tests.e2e.conftest import fast_settings
from tests.faults.history import History
from tests.faults.pgcluster import PrivateCluster, cluster_or_skip
from tests.faults.procs import Procs


@pytest.fixture
def history(tmp_path: Path) -> History:
    return History(tmp_path / "history.jsonl")


@pytest.fixture
def procs(tmp_path: Path, history: History) -> Iterator[Procs]:
    p = Procs(tmp_path, history)
    try:
        yield p
    finally:
        p.close()


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivateCluster]:
    cluster = cluster_or_skip()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest_asyncio.fixture
async def private_pg_url(private_pg: PrivateCluster) -> AsyncIterator[str]:
    """A fresh database on the private cluster (which a test may stop and start)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(private_pg.url(), timeout=10)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield private_pg.url(name)


async def open_app(url: str) -> App:
    """The test's own view of the store (submits, reads), migrated."""
    app = App(settings=fast_settings(url))
    await app.open(migrate=True)
    return app
