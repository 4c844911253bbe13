"""The two stores' schemas after migration have the same shape: the same tables with the same
column names, the same indexed columns, and the same migrations applied. A migration written
for one backend only fails here until its counterpart exists.

Also: the SQLite queries that depend on a partial index still use it. SQLite matches a partial
index's WHERE against the query's as written (an IN list in another order does not match), and
the queries spell their status sets through store/sql tokens, so a migration that recreates
such an index with its list in another order would silently turn a lookup into a table scan.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from conveyor.domain.job import JobStatus
from conveyor.domain.records import JobFilter
from conveyor.store import open_store
from conveyor.store.migrate import MIGRATIONS_DIR
from conveyor.store.postgres import PostgresStore, parse_url, quote_ident
from conveyor.store.postgres import Q as Q_PG
from conveyor.store.sqlite import Q

Index = tuple[tuple[str, ...], bool]  # (indexed columns in order, unique)

# What one backend has by design, and why. Anything else found on one side only is drift.
BACKEND_ONLY: dict[str, set[str]] = {
    # Leadership: SQLite keeps an expiring lease row; PostgreSQL holds a session advisory lock.
    "sqlite": {"leaders"},
    "postgres": set(),
}
BACKEND_ONLY_INDEXES: dict[str, dict[str, set[Index]]] = {
    "sqlite": {},
    "postgres": {},
}


@dataclass
class Shape:
    tables: dict[str, set[str]]  # table -> column names
    indexes: dict[str, set[Index]]  # table -> indexes other than the primary key's
    migrations: set[str]

    def without(self, backend: str) -> Shape:
        """The shape less what `backend` has by design (asserting that it still has it)."""
        tables, indexes = BACKEND_ONLY[backend], BACKEND_ONLY_INDEXES[backend]
        assert tables <= set(self.tables), f"a {backend}-only table is gone"
        for table, allowed in indexes.items():
            assert allowed <= self.indexes[table], f"a {backend}-only index on {table} is gone"
        return Shape(
            {t: c for t, c in self.tables.items() if t not in tables},
            {t: i - indexes.get(t, set()) for t, i in self.indexes.items() if t not in tables},
            self.migrations,
        )


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def sqlite_shape(path: str) -> Shape:
    db = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        tables: dict[str, set[str]] = {}
        indexes: dict[str, set[Index]] = {}
        for t in names:
            tables[t] = {r[1] for r in db.execute(f'PRAGMA table_info("{t}")')}
            found: set[Index] = set()
            # (seq, name, unique, origin, partial); origin 'pk' is the primary key's own index.
            for _, name, unique, origin, _ in db.execute(f'PRAGMA index_list("{t}")'):
                if origin == "pk":
                    continue
                info = sorted(db.execute(f'PRAGMA index_info("{name}")'))
                found.add((tuple(r[2] for r in info), bool(unique)))
            indexes[t] = found
        migrations = {r[0] for r in db.execute("SELECT name FROM schema_migrations")}
    finally:
        db.close()
    return Shape(tables, indexes, migrations)


PG_INDEXES = """
SELECT t.relname AS tbl, ix.indisunique AS uniq,
       ARRAY(SELECT a.attname
               FROM unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum
              ORDER BY k.ord) AS cols
  FROM pg_index ix
  JOIN pg_class t ON t.oid = ix.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname = $1 AND NOT ix.indisprimary
"""


async def pg_shape(url: str) -> Shape:
    dsn, schema = parse_url(url)
    conn = await asyncpg.connect(dsn)
    try:
        tables: dict[str, set[str]] = {}
        for r in await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = $1",
            schema,
        ):
            tables.setdefault(r["table_name"], set()).add(r["column_name"])
        indexes: dict[str, set[Index]] = {t: set() for t in tables}
        for r in await conn.fetch(PG_INDEXES, schema):
            indexes[r["tbl"]].add((tuple(r["cols"]), r["uniq"]))
        migrations = {
            r["name"]
            for r in await conn.fetch(f"SELECT name FROM {quote_ident(schema)}.schema_migrations")
        }
    finally:
        await conn.close()
    return Shape(tables, indexes, migrations)


async def migrated(url: str) -> None:
    store = open_store(url)
    await store.connect()
    try:
        await store.migrate()
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def pg_connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection of a migrated PostgreSQL store (its schema on the search_path)."""
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    await store.connect()
    try:
        await store.migrate()
        async with store.pool.acquire() as conn:
            yield conn
    finally:
        await store.close()


async def generic_plan(
    conn: asyncpg.Connection, statement: str, args: str, explain: str = "EXPLAIN"
) -> str:
    """The plan PostgreSQL's plan cache can settle on for `statement` (generic, as after five
    runs of an asyncpg prepared statement), executed with the SQL arguments `args`."""
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    await conn.execute(f"PREPARE stmt AS {statement}")
    return "\n".join(r[0] for r in await conn.fetch(f"{explain} EXECUTE stmt({args})"))


def test_both_backends_have_the_same_migration_files() -> None:
    names = {
        backend: {f.stem for f in (MIGRATIONS_DIR / backend).glob("*.sql")}
        for backend in ("sqlite", "postgres")
    }
    assert names["sqlite"] == names["postgres"]


@pytest.mark.postgres
async def test_migrated_schemas_match(sqlite_url: str, pg_url: str) -> None:
    await migrated(sqlite_url)
    await migrated(pg_url)
    lite = sqlite_shape(sqlite_path(sqlite_url)).without("sqlite")
    pg = (await pg_shape(pg_url)).without("postgres")

    assert sorted(lite.tables) == sorted(pg.tables)
    for table in sorted(lite.tables):
        assert lite.tables[table] == pg.tables[table], f"columns of {table}"
    for table in sorted(lite.tables):
        assert lite.indexes[table] == pg.indexes[table], f"indexed columns of {table}"
    assert lite.migrations == pg.migrations


def query_plan(db: sqlite3.Connection, sql: str) -> str:
    params = [None] * sql.count("?")
    return " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))


# Query -> the partial index it must search.
PARTIAL_INDEX_USERS = {
    "select_live_by_unique_keys": "jobs_unique_key_idx",
    "any_due": "jobs_due_idx",
    "select_due": "jobs_due_idx",
    "prune_finished": "jobs_prune_idx",
    "count_finished": "jobs_prune_idx",
    "any_expired": "jobs_lease_idx",
    "select_expired": "jobs_lease_idx",
    "claim_arm": "jobs_claim_idx",
    # the depth check's waiting jobs, and count_by_queue_status's jobs neither queued nor
    # running (migration 0007)
    "select_depth_limits": "jobs_queue_status_idx",
    "count_by_queue_status": "jobs_queue_status_idx",
}


async def test_sqlite_queries_use_their_partial_indexes(sqlite_url: str) -> None:
    await migrated(sqlite_url)
    db = sqlite3.connect(sqlite_path(sqlite_url))
    try:
        for name, index in PARTIAL_INDEX_USERS.items():
            plan = query_plan(db, Q[name])
            assert f"INDEX {index} " in plan, f"{name} does not use {index}: {plan}"
        # listing the dead-letter queue (and the other parked statuses), newest first
        dead = Q.list_jobs.format(where=Q.list_filter_parked_status)
        plan = query_plan(db, dead)
        assert "INDEX jobs_status_id_idx " in plan, plan
    finally:
        db.close()


@pytest.mark.postgres
async def test_postgres_lists_a_parked_status_through_its_index(pg_url: str) -> None:
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    await store.connect()
    try:
        await store.migrate()
        async with store.pool.acquire() as conn:
            # generic plans must prove the partial index too (prepared statements switch to
            # them after a few executions)
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            await conn.execute("SET enable_seqscan = off")
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN SELECT id FROM jobs WHERE "
                    + Q_PG.list_jobs_by_parked_status.format(1)
                    + " ORDER BY id DESC LIMIT 10",
                    JobStatus.DEAD.value,
                )
            )
        assert "jobs_status_id_idx" in plan, plan
        assert (await store.list_jobs(JobFilter(status=JobStatus.DEAD))).jobs == []
    finally:
        await store.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("statement", "args"), [("claim_ids", "'w', 30"), ("claim_ids_limited", "'w', 30, '{}'")]
)
async def test_postgres_claims_ids_through_the_primary_key_only(
    pg_url: str, statement: str, args: str
) -> None:
    """The transports' claim (claim_ids) must cost the same with a long backlog as without:
    its generic plan once read jobs_claim_idx whole (every queued job) to claim a few ids."""
    async with pg_connection(pg_url) as conn:
        # Statistics taken when few jobs waited among many finished ones (as after a
        # drain): the plan that scans jobs_claim_idx looks cheap, until a backlog builds.
        await conn.execute(
            "INSERT INTO jobs (id, queue, type, status, run_at)"
            " SELECT gen_random_uuid(), 'q', 't',"
            "  CASE WHEN i % 200 = 0 THEN 'queued' ELSE 'completed' END, now()"
            " FROM generate_series(1, 20000) AS i"
        )
        await conn.execute("ANALYZE jobs")
        plan = await generic_plan(
            conn, getattr(Q_PG, statement), f"ARRAY[gen_random_uuid()], {args}"
        )
    assert "jobs_claim_idx" not in plan, plan
    assert "Seq Scan on jobs" not in plan, plan


# A submit into queue 'q', for each statement that checks its depth (EXECUTE arguments).
DEPTH_CHECKS = {
    "enqueue_lone": "gen_random_uuid(), 'q', 't', NULL, 0, NULL, 3, 300, NULL, NULL, NULL",
    "enqueue_one": "gen_random_uuid(), 'q', 't', NULL, 0, NULL, 3, 300, 'k', NULL, NULL, NULL",
    "enqueue": """'[{"id": "0192c0de-0000-7000-8000-000000000000", "queue": "q", "type": "t","""
    """ "priority": 0, "max_retries": 3, "timeout": 300}]', NULL""",
}


@pytest.mark.postgres
@pytest.mark.parametrize("statement", sorted(DEPTH_CHECKS))
async def test_postgres_depth_check_reads_indexes_not_the_table(
    pg_url: str, statement: str
) -> None:
    """A queue's max_depth check must cost what its backlog costs, not what the table holds:
    counting through jobs read every job, finished ones included, on each submit into a
    limited queue. Waiting jobs of many queues, due at scattered times: counting a queue's
    share through an index without the queue column was a walk of all of them, or (as here)
    a sequential scan again."""
    async with pg_connection(pg_url) as conn:
        await conn.execute(
            "INSERT INTO jobs (id, queue, type, status, run_at)"
            " SELECT gen_random_uuid(),"
            "  CASE WHEN i % 100 BETWEEN 2 AND 39 THEN 'other' || i % 50 ELSE 'q' END, 't',"
            "  CASE WHEN i % 100 = 0 THEN 'queued' WHEN i % 100 < 40 THEN 'scheduled'"
            "  ELSE 'completed' END, now() + random() * interval '1 day'"
            " FROM generate_series(1, 20000) AS i"
        )
        await conn.execute("INSERT INTO queues (name, max_depth) VALUES ('q', 1000)")
        await conn.execute("ANALYZE jobs")
        plan = await generic_plan(conn, getattr(Q_PG, statement), DEPTH_CHECKS[statement])
    assert "Seq Scan on jobs" not in plan, plan
    assert "jobs_queue_status_idx" in plan, plan


@pytest.mark.postgres
async def test_postgres_promotes_through_the_primary_key_only(pg_url: str) -> None:
    """Promotion (promote) must touch only the jobs it moves: its generic plan once hash-joined
    a sequential scan of jobs to the due ones, i.e. read the whole table to promote a few."""
    async with pg_connection(pg_url) as conn:
        # Statistics taken during a burst of retries (a tenth of the jobs waiting and due):
        # the plan that reads every job looks cheaper than looking up each due one.
        await conn.execute(
            "INSERT INTO jobs (id, queue, type, status, run_at)"
            " SELECT gen_random_uuid(), 'q', 't',"
            "  CASE WHEN i % 10 = 0 THEN 'retrying' ELSE 'completed' END, now()"
            " FROM generate_series(1, 20000) AS i"
        )
        await conn.execute("ANALYZE jobs")
        plan = await generic_plan(conn, Q_PG.promote, "1000, 'c'")
    assert "jobs_pkey" in plan, plan
    assert "Seq Scan on jobs" not in plan, plan


@pytest.mark.postgres
async def test_postgres_claim_ids_counts_a_limited_queue_once(pg_url: str) -> None:
    """claim_ids_limited must count a limited queue's running jobs once per queue, not once per id
    it claims. With `room` inlined into `picked`, the count ran in a join filter, once for
    each candidate, whatever the statistics and in custom plans as in the generic one."""
    async with pg_connection(pg_url) as conn:
        await conn.execute("INSERT INTO queues (name, concurrency) VALUES ('q', 1000)")
        await conn.execute(
            "INSERT INTO jobs (id, queue, type, status, run_at, worker_id, lease_expires_at)"
            " SELECT gen_random_uuid(), 'q', 't', 'running', now(), 'w', now() + interval '1 h'"
            " FROM generate_series(1, 100)"
        )
        ids = await conn.fetchval(
            "WITH new AS (INSERT INTO jobs (id, queue, type, status, run_at)"
            " SELECT gen_random_uuid(), 'q', 't', 'queued', now() FROM generate_series(1, 20)"
            " RETURNING id) SELECT array_agg(id)::text FROM new"
        )
        plan = await generic_plan(
            conn, Q_PG.claim_ids_limited, f"'{ids}', 'w', 30, ARRAY['q']", "EXPLAIN ANALYZE"
        )
    # the scan of the running jobs (`jobs r`, whichever its index) runs once
    assert re.findall(r" on jobs r .*loops=(\d+)", plan) == ["1"], plan
    assert re.search(r"CTE Scan on claimed .* rows=20 ", plan), plan


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("statement", "args"),
    [
        ("claim_ids", lambda ids: (ids, "w", 30.0)),
        ("claim_ids_limited", lambda ids: (ids, "w", 30.0, [])),
        ("complete", lambda ids: (ids, [1], [None])),
        ("heartbeat", lambda ids: ("w", ids, [1], 30.0)),
    ],
)
async def test_postgres_hot_statements_keep_their_generic_plan(
    pg_url: str, statement: str, args: Callable[[list[uuid.UUID]], tuple[object, ...]]
) -> None:
    """One-job calls (a worker at a low steady rate) must not be planned anew each time:
    when a custom plan could see an array parameter's length, the plan cache kept choosing
    custom plans over the generic one, and planning cost more than the statement."""
    sql = getattr(Q_PG, statement)
    async with pg_connection(pg_url) as conn:
        # A table of some size, with statistics: on an empty one every plan costs the same.
        await conn.execute(
            "INSERT INTO jobs (id, queue, type, status, run_at)"
            " SELECT gen_random_uuid(), 'q', 't', 'completed', now()"
            " FROM generate_series(1, 20000)"
        )
        await conn.execute("ANALYZE jobs")
        for _ in range(20):
            await conn.fetch(sql, *args([uuid.uuid4()]))
        row = await conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
            sql,
        )
    assert row is not None
    # The plan cache's first five executions are custom plans by design.
    assert (row["generic_plans"], row["custom_plans"]) == (15, 5)
