"""Property-based run against the OpenAPI spec: no 5xx, and every response matches the spec.

In-process over ASGI on SQLite, with a bounded number of examples per operation so the whole
run stays well under a minute. The app is built at import because schemathesis parametrizes
at collection time (its fixture-based loader does not support this pytest version).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from conveyor.api import create_app
from conveyor.store import open_store
from tests.api.conftest import admin_headers, api_settings

_DIR = tempfile.TemporaryDirectory(prefix="conveyor-schemathesis-")
_URL = f"sqlite:///{Path(_DIR.name) / 'conveyor.db'}"


async def _migrate(url: str) -> None:
    store = open_store(url)
    await store.connect()
    try:
        await store.migrate()
    finally:
        await store.close()


_SETTINGS = api_settings(_URL, api_max_wait=0.2, api_wait_interval=0.05)
app = create_app(_SETTINGS)
ADMIN = admin_headers(_SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _migrated() -> Iterator[None]:
    asyncio.run(_migrate(_URL))
    yield
    asgi.shutdown_lifespans()
    _DIR.cleanup()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_spec(case: schemathesis.Case) -> None:
    # Schema-valid is not always acceptable: a cron expression or a 404 id cannot be told
    # apart by JSON Schema, so only "accepted input is never rejected" is left out.
    case.call_and_validate(headers=ADMIN, excluded_checks=[positive_data_acceptance])
