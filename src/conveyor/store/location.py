"""How a store is named to a person: its URL with any password masked and, for a SQLite file,
the absolute path it resolved to (the usual surprise is a command run from another directory
with the relative default URL)."""

from __future__ import annotations

from pathlib import Path

from conveyor.domain.errors import SchemaMissing
from conveyor.security.redact import redact_text

_SQLITE = "sqlite:///"


def schema_missing(url: str, pending: int) -> SchemaMissing:
    """The error for a store without (all of) its schema: which store, and what to run."""
    resolved = None
    if url.startswith(_SQLITE):
        raw = url[len(_SQLITE) :].split("?", 1)[0]
        resolved = str(Path(raw).expanduser().resolve())
        if resolved == raw:
            resolved = None
    return SchemaMissing(redact_text(url), pending, resolved=resolved)
