"""Stores: pick a backend from a URL (`sqlite:///path.db`, `postgresql://…`).

The records a store takes and returns live in conveyor.domain.records, so that code which
only names them does not depend on the store.
"""

from __future__ import annotations

from conveyor.domain.errors import InvalidInput
from conveyor.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str) -> Store:
    """Build (not connect) the store for `url`.

    PostgreSQL URLs accept a `schema` query parameter (default `public`) so several
    Conveyors, or tests, can share one database.
    """
    if url.startswith("sqlite:"):
        from conveyor.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if url.startswith(("postgresql:", "postgres:")):
        from conveyor.store.postgres import PostgresStore

        return PostgresStore(url)
    raise InvalidInput(f"unsupported store URL {url!r}: use sqlite:///path.db or postgresql://…")
