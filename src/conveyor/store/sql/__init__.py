"""Named queries: one `.sql` file per noun and backend (`store/sql/<backend>/<noun>.sql`), read
once at import.

A file holds blocks headed `-- name: claim_one`; the text up to the next header is the query
(aiosql's file format, so editors and linters that know it read these files as they are).
Double-brace tokens name the domain's own vocabulary and are filled in at load, so a status
set is spelled in one place (conveyor.domain.job) and never as literals in a query:
`{{terminal}}` becomes `'cancelled', 'completed', 'dead'`, `{{waiting}}` the statuses that wait
for their run_at, `{{parked}}` those listed through their own index (`{{parked_any}}` the same
set as `(status = ... OR ...)`, `{{live}}` the non-terminal ones as `status <> ... AND ...`),
`{{job_columns}}` the column order both drivers' row mappers read (`{{claimed_columns}}` what
a claim returns), `{{publish}}` whether the transition statements write outbox rows.
Single braces (JSON and array literals) are left alone.

A block headed `-- fragment: name` is a piece of SQL several queries of the backend share, in
any of its files: `{{name}}` in a query is replaced by it (its own tokens filled in first).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from conveyor.domain.job import TERMINAL, WAITING, JobStatus

SQL_DIR = Path(__file__).parent

_HEADER = re.compile(r"^--\s*(name|fragment):\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_TOKEN = re.compile(r"\{\{([a-z_]+)\}\}")


def _sql_list(statuses: Iterable[JobStatus]) -> str:
    return ", ".join(f"'{s.value}'" for s in sorted(statuses))


def _sql_any(statuses: Iterable[JobStatus]) -> str:
    """`status IN (...)` as comparisons joined by OR: SQLite evaluates an IN list of three or
    more values in a partial index's WHERE through a temporary b-tree for every row written
    (sqlite migration 0007), so its indexes spell their predicates this way."""
    return "(" + " OR ".join(f"status = '{s.value}'" for s in sorted(statuses)) + ")"


def _sql_none(statuses: Iterable[JobStatus]) -> str:
    """`status NOT IN (...)` as comparisons joined by AND (see _sql_any)."""
    return " AND ".join(f"status <> '{s.value}'" for s in sorted(statuses))


# The statuses a job rests in, which operators list (the dead-letter queue above all): only
# these have a listing index, jobs_status_id_idx (migrations 0005). Every job passes through
# the others, and an index entry per step was a fifth of the WAL a job wrote.
PARKED = WAITING | {JobStatus.DEAD, JobStatus.CANCELLED}

TOKENS: Mapping[str, str] = {
    "terminal": _sql_list(TERMINAL),
    "waiting": _sql_list(WAITING),
    "parked": _sql_list(PARKED),
    # The same sets as SQLite's partial indexes spell them (sqlite migration 0007).
    "parked_any": _sql_any(PARKED),
    "live": _sql_none(TERMINAL),
    # Whether the transition statements also write their outbox rows (migration 0006). The
    # drivers load a second set with "true" for a store that publishes events.
    "publish": "false",
    # Row shapes both drivers read positionally (their row mappers follow this order).
    "job_columns": (
        "id, queue, type, payload, priority, status, run_at, attempt, max_retries, timeout, "
        "unique_key, tags, tenant, result, last_error, worker_id, lease_expires_at, lease_token, "
        "created_at, started_at, finished_at, updated_at"
    ),
    # What a claim returns, on both backends: the job columns less those the claim sets itself
    # (status, worker_id, lease_expires_at, started_at, updated_at), which the driver fills in.
    "claimed_columns": (
        "id, queue, type, payload, priority, run_at, attempt, max_retries, timeout, unique_key, "
        "tags, tenant, result, last_error, lease_token, created_at, finished_at"
    ),
    "worker_columns": (
        "id, hostname, pid, queues, concurrency, started_at, last_seen_at, running, meta"
    ),
    "schedule_columns": (
        "name, cron, timezone, type, payload, queue, priority, max_retries, timeout, enabled, "
        "next_run_at, last_run_at, created_at, updated_at"
    ),
    "user_columns": "username, role, tenant, password_hash, disabled, created_at, updated_at",
    "token_columns": "jti, name, role, tenant, created_by, created_at, expires_at, revoked_at",
}


class Queries(dict[str, str]):
    """name -> SQL text; `q.claim_one` reads like a function name at the call site."""

    def __getattr__(self, name: str) -> str:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no query named {name!r}") from None


def _blocks(text: str, source: str) -> list[tuple[str, str, str]]:
    """(kind, name, body) of each block of one file, kind "name" (a query) or "fragment"."""
    parts = _HEADER.split(text)
    if parts[0].strip() and not all(
        line.startswith("--") for line in parts[0].strip().splitlines()
    ):
        raise ValueError(f"{source}: SQL before the first '-- name:' header")
    return list(zip(parts[1::3], parts[2::3], parts[3::3], strict=True))


def _fill(body: str, tokens: Mapping[str, str], source: str, name: str) -> str:
    """The block with its tokens filled in. Unknown tokens and empty blocks are load errors: a
    typo fails at import, not on the first call."""

    def fill(m: re.Match[str]) -> str:
        try:
            return tokens[m.group(1)]
        except KeyError:
            raise ValueError(f"{source}: {name} uses unknown token {m.group(0)}") from None

    sql = _TOKEN.sub(fill, body).strip()
    if not sql:
        raise ValueError(f"{source}: {name} is empty")
    return sql


def load(backend: str, tokens: Mapping[str, str] = TOKENS) -> Queries:
    """Every named query of one backend, its fragments and tokens filled in. Names are unique
    across its files, and a fragment may not take a token's name."""
    files = [
        (path.name, _blocks(path.read_text(encoding="utf-8"), path.name))
        for path in sorted((SQL_DIR / backend).glob("*.sql"))
    ]
    known = dict(tokens)
    for source, blocks in files:
        for kind, name, body in blocks:
            if kind == "fragment":
                if name in known:
                    raise ValueError(f"{source}: fragment {name} is defined twice, or is a token")
                # Its leading comment describes it where it is defined, not in every query.
                lines = body.strip().splitlines()
                while lines and lines[0].startswith("--"):
                    del lines[0]
                known[name] = _fill("\n".join(lines), tokens, source, name)
    queries = Queries()
    for source, blocks in files:
        for kind, name, body in blocks:
            if kind != "name":
                continue
            if name in queries:
                raise ValueError(f"{backend}: query {name} is defined twice")
            queries[name] = _fill(body, known, source, name)
    if not queries:
        raise ValueError(f"no queries found for backend {backend!r}")
    return queries
