"""Stores: pick a backend from a URL (`sqlite:///path.db`, `postgresql://…`).

The records a store takes and returns live in conveyor.domain.records, so that code which
only names them does not depend on the store.
"""

from __future__ import annotations

from conveyor.domain.errors import InvalidInput
from conveyor.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, *, publish_events: bool = False) -> Store:
    """Build (not connect) the store for `url`.

    PostgreSQL URLs accept a `schema` query parameter (default `public`) so several
    Conveyors, or tests, can share one database. `publish_events`: every transition also
    writes its outbox row, for the Kafka relay (Settings.publishes_events).
    """
    if url.startswith("sqlite:"):
        from conveyor.store.sqlite import SQLiteStore

        return SQLiteStore(url, publish_events=publish_events)
    if url.startswith(("postgresql:", "postgres:")):
        from conveyor.store.postgres import PostgresStore

        return PostgresStore(url, publish_events=publish_events)
    raise InvalidInput(f"unsupported store URL {url!r}: use sqlite:///path.db or postgresql://…")
