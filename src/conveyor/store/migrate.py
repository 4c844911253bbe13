"""The one migration runner: numbered `.sql` files in `store/migrations/<backend>/`, applied in
order, each recorded in `schema_migrations` in the same transaction as its statements.

A backend supplies only its dialect (how to read the applied set, how to run one script) and
holds its own lock or write transaction around the call, so concurrent `migrate` calls from
several processes apply each migration once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class MigrationTarget(Protocol):
    async def applied_migrations(self) -> set[str]:
        """Names already applied (creating the bookkeeping table when missing)."""

    async def apply_migration(self, name: str, script: str) -> None:
        """Run one script and record `name` as applied."""


def pending(backend: str, applied: set[str]) -> list[tuple[str, str]]:
    """(name, script) of every migration of `backend` not yet applied, in order."""
    files = sorted((MIGRATIONS_DIR / backend).glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no migrations for backend {backend!r}")
    return [(f.stem, f.read_text(encoding="utf-8")) for f in files if f.stem not in applied]


async def run_migrations(backend: str, target: MigrationTarget) -> list[str]:
    """Apply what is pending; returns the names applied now."""
    done: list[str] = []
    for name, script in pending(backend, await target.applied_migrations()):
        await target.apply_migration(name, script)
        done.append(name)
    return done


def pending_names(backend: str, applied: set[str] | None) -> list[str]:
    """Migrations of `backend` not applied yet; all of them when `applied` is None (no
    bookkeeping table: a store never migrated)."""
    return [name for name, _ in pending(backend, applied or set())]
