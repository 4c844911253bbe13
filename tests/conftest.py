"""Shared fixtures: per-test PostgreSQL schemas and SQLite files, and a `store` fixture that runs
every store test against both backends.

Services: tests that need PostgreSQL skip when it is unreachable, unless
CONVEYOR_REQUIRE_SERVICES is set (CI), in which case they fail loudly instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
import structlog

from conveyor.store import Store, open_store

PG_DSN = os.environ.get("CONVEYOR_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

# Remember an unreachable server for the rest of the session so that a missing PostgreSQL
# costs one connect timeout, not one per test.
_pg_down: str | None = None


@pytest.fixture(autouse=True)
def _structlog_config_restored() -> Iterator[None]:
    """A command run in-process (click's CliRunner) configures structlog for the whole process,
    caching loggers on first use from then on: put the configuration back after each test, so a
    later test's capture_logs sees its events whatever order (or xdist worker) tests run in."""
    config = structlog.get_config()
    yield
    if structlog.get_config() != config:
        structlog.configure(**config)


def services_required() -> bool:
    return bool(os.environ.get("CONVEYOR_REQUIRE_SERVICES"))


def require_services(service: str, reason: str) -> None:
    """A needed service is unreachable: fail when CONVEYOR_REQUIRE_SERVICES is set, else skip."""
    message = f"{service} is unreachable: {reason}"
    if services_required():
        pytest.fail(
            f"{message} (CONVEYOR_REQUIRE_SERVICES is set, so this is a failure, not a skip)",
            pytrace=False,
        )
    pytest.skip(message)


REDIS_URL = os.environ.get("CONVEYOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEAD_REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def _redis_up() -> str | None:
    host_port = REDIS_URL.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=1):
            return None
    except OSError as exc:
        return f"{REDIS_URL}: {exc}"


@pytest.fixture
def redis_url() -> str:
    down = _redis_up()
    if down:
        require_services("Redis", down)
    return REDIS_URL


def with_schema(dsn: str, schema: str) -> str:
    """`dsn` with `schema=<schema>` added to (or replaced in) its query string."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"]
    query.append(("schema", schema))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _pg_connect() -> asyncpg.Connection:
    global _pg_down
    if _pg_down is not None:
        require_services("PostgreSQL", _pg_down)
    try:
        return await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        _pg_down = f"{PG_DSN}: {type(exc).__name__}: {exc}"
        require_services("PostgreSQL", _pg_down)
        raise  # unreachable: require_services always raises


@pytest_asyncio.fixture
async def pg_url() -> AsyncIterator[str]:
    """A PostgreSQL store URL on a fresh schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    conn = await _pg_connect()
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()
    try:
        yield with_schema(PG_DSN, schema)
    finally:
        conn = await _pg_connect()
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/conveyor.db"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def backend(store_url: str) -> str:
    """Which backend: "sqlite" or "postgres", for the few rules that differ by backend."""
    return "sqlite" if store_url.startswith("sqlite:") else "postgres"


@pytest_asyncio.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = open_store(store_url)
    await s.connect()
    try:
        await s.migrate()
        yield s
    finally:
        await s.close()


@pytest_asyncio.fixture
async def store_factory(
    store_url: str, store: Store
) -> AsyncIterator[Callable[[], Awaitable[Store]]]:
    """Open more store instances on the same URL (as other processes would); closed at the end.
    Depends on `store`, so the schema is already migrated."""
    opened: list[Store] = []

    async def make() -> Store:
        s = open_store(store_url)
        await s.connect()
        opened.append(s)
        return s

    try:
        yield make
    finally:
        for s in reversed(opened):
            await s.close()
