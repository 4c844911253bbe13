"""Issue 18, store behaviours (both stores): a worker consuming every queue (ALL_QUEUES), a
schedule created only if its name is free, and the pending-migrations check that lets every
door say "run conveyor migrate" instead of failing on a missing table."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta

import pytest

from conveyor.domain.errors import AlreadyExists, SchemaMissing
from conveyor.domain.job import ALL_QUEUES, JobStatus
from conveyor.domain.records import QueueSettings, Schedule
from conveyor.service.startup import ensure_migrated
from conveyor.store import Store, open_store
from tests.helpers import child_pythonpath, enqueue, make_job, utcnow, wait_until


async def test_all_queues_claims_from_every_queue_in_claim_order(store: Store) -> None:
    jobs = await enqueue(
        store,
        make_job(queue="email", priority=1),
        make_job(queue="default"),
        make_job(queue="reports.nightly", priority=5),
        make_job(queue="zz-later"),
    )
    claimed = await store.claim("w", [ALL_QUEUES], 10, 30.0)
    # priority desc, then run_at, then id: across queues as within one
    assert [j.id for j in claimed] == [jobs[2].id, jobs[0].id, jobs[1].id, jobs[3].id]
    assert {j.status for j in claimed} == {JobStatus.RUNNING}
    assert await store.claim("w", [ALL_QUEUES], 10, 30.0) == []


async def test_all_queues_honours_the_limit_pauses_and_concurrency_limits(store: Store) -> None:
    await store.set_queue_settings(QueueSettings(name="paused", paused=True))
    await store.set_queue_settings(QueueSettings(name="one-at-a-time", concurrency=1))
    await enqueue(
        store,
        *[make_job(queue="paused") for _ in range(3)],
        *[make_job(queue="one-at-a-time") for _ in range(3)],
        *[make_job(queue="free") for _ in range(3)],
    )
    first = await store.claim("w", [ALL_QUEUES], 2, 30.0)
    assert len(first) == 2
    rest = await store.claim("w", [ALL_QUEUES], 100, 30.0)
    queues = [j.queue for j in first + rest]
    assert "paused" not in queues
    assert queues.count("one-at-a-time") == 1
    assert queues.count("free") == 3


async def test_a_wait_on_all_queues_wakes_for_a_job_on_any_queue(
    store: Store, store_factory
) -> None:
    other = await store_factory()
    # A first short wait sets up the listener (PostgreSQL's LISTEN connection, SQLite's wake
    # socket), as a worker's loop does: from then on a wake is delivered or latched, never lost.
    await store.wait_for_jobs([ALL_QUEUES], 0.05)
    waiting = asyncio.create_task(store.wait_for_jobs([ALL_QUEUES], 30.0))
    await enqueue(other, make_job(queue="a-queue-nobody-named"))
    await wait_until(waiting.done, timeout=5, message="the all-queues waiter to wake")
    (job,) = await store.claim("w", [ALL_QUEUES], 10, 30.0)
    assert job.queue == "a-queue-nobody-named"


def _schedule(name: str, cron: str = "* * * * *") -> Schedule:
    return Schedule(
        name=name,
        cron=cron,
        timezone="UTC",
        type="tick",
        payload={},
        queue="default",
        next_run_at=utcnow() + timedelta(minutes=1),
    )


async def test_create_schedule_refuses_a_taken_name_and_changes_nothing(store: Store) -> None:
    created = await store.create_schedule(_schedule("nightly", "0 3 * * *"))
    assert created.cron == "0 3 * * *"
    with pytest.raises(AlreadyExists, match="nightly"):
        await store.create_schedule(_schedule("nightly", "*/5 * * * *"))
    (kept,) = await store.list_schedules()
    assert kept.cron == "0 3 * * *"
    replaced = await store.upsert_schedule(_schedule("nightly", "*/5 * * * *"))
    assert replaced.cron == "*/5 * * * *"


async def test_pending_migrations_of_a_migrated_store_is_empty(store: Store) -> None:
    assert await store.pending_migrations() == []
    await ensure_migrated(store)  # does not raise


async def test_an_unmigrated_store_reports_its_schema_missing(store_url: str) -> None:
    s = open_store(store_url)  # the fixture URL, never migrated (a fresh SQLite path or schema)
    await s.connect()
    try:
        pending = await s.pending_migrations()
        assert pending and pending == sorted(pending)
        with pytest.raises(SchemaMissing) as info:
            await ensure_migrated(s)
        assert "conveyor migrate --store-url" in info.value.message
        assert f"{len(pending)} migration(s)" in info.value.message
        await s.migrate()
        assert await s.pending_migrations() == []
    finally:
        await s.close()


UNCLOSED = """
import asyncio, sys
from conveyor import App

async def main() -> None:
    app = App(sys.argv[1], check_types=False)
    await app.open()
    job = await app.enqueue("t", {})
    assert (await app.store.get_job(job.id)).id == job.id  # the store's read path too
    print("returning without closing", flush=True)

asyncio.run(main())
"""


async def test_a_program_that_never_closes_its_store_still_exits(
    store: Store, store_url: str
) -> None:
    """A script that forgets `await app.close()` must end when its code does. With aiosqlite
    (0.22), the reader connection's thread kept the interpreter alive for ever."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        UNCLOSED,
        store_url,
        env={**os.environ, "PYTHONPATH": child_pythonpath()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), timeout=30)
    except TimeoutError:
        child.kill()
        await child.wait()
        pytest.fail("the process did not exit after its code returned")
    assert child.returncode == 0, err.decode()
    assert b"returning without closing" in out
