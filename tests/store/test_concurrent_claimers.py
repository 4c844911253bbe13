"""Exactly-once claiming under real contention: several OS processes, each with its own store
instance on the same database, drain one queue of 10,000 jobs in claim(50) + complete_many
batches. Every job must end completed after exactly one claim (one queued->running event,
attempt 1), and no two processes may ever have been handed the same job.

Processes, not tasks: SQLite's locking and PostgreSQL's SKIP LOCKED only show their races
between separate connections in separate processes."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

from conveyor.domain.job import JobStatus
from conveyor.domain.records import Completion, JobFilter
from conveyor.store import Store, open_store
from tests.helpers import counts, make_job

N_JOBS = 10_000
N_PROCESSES = 4
BATCH = 50
QUEUE = "bulk"


async def _drain(url: str, worker_id: str) -> list[str]:
    store = open_store(url)
    await store.connect()
    claimed: list[str] = []
    try:
        while True:
            jobs = await store.claim(worker_id, [QUEUE], BATCH, 120.0)
            if not jobs:
                # everything was enqueued before the workers started: empty means drained
                return claimed
            claimed += [str(j.id) for j in jobs]
            applied = await store.complete_many(
                [Completion(j.id, j.lease_token, {"by": worker_id}) for j in jobs]
            )
            assert sorted(applied) == sorted(j.id for j in jobs), "a held lease did not apply"
    finally:
        await store.close()


def drain(url: str, worker_id: str, start: Any, results: Any) -> None:
    """Process entry point (module level, so spawn can import it). Waits at the barrier so all
    processes start claiming together, then reports (worker_id, ids) or (worker_id, error)."""
    try:
        start.wait(timeout=60)
        results.put((worker_id, asyncio.run(_drain(url, worker_id))))
    except BaseException as exc:
        results.put((worker_id, f"{type(exc).__name__}: {exc}"))
        raise


async def test_processes_claim_each_job_exactly_once(store: Store, store_url: str) -> None:
    for start in range(0, N_JOBS, 1000):
        results = await store.enqueue_many(
            [make_job(queue=QUEUE, payload={"n": n}) for n in range(start, start + 1000)]
        )
        assert all(r.created for r in results)
    assert await counts(store, QUEUE) == {JobStatus.QUEUED: N_JOBS}

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_PROCESSES)
    outbox = ctx.Queue()
    procs = [
        ctx.Process(target=drain, args=(store_url, f"proc-{i}", barrier, outbox), daemon=True)
        for i in range(N_PROCESSES)
    ]
    for p in procs:
        p.start()
    try:
        reports = dict(await asyncio.to_thread(lambda: [outbox.get(timeout=90) for _ in procs]))
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    errors = {w: r for w, r in reports.items() if isinstance(r, str)}
    assert not errors, f"worker processes failed: {errors}"

    claimed = [job_id for ids in reports.values() for job_id in ids]
    busy = sum(1 for ids in reports.values() if ids)
    assert busy >= 2, f"no contention: claims per process {[len(i) for i in reports.values()]}"
    assert len(claimed) == N_JOBS, f"{len(claimed)} claims for {N_JOBS} jobs"
    assert len(set(claimed)) == N_JOBS, "some job was handed to two claimers"
    assert await counts(store, QUEUE) == {JobStatus.COMPLETED: N_JOBS}

    # every job: attempt 1, and exactly one claim in its audit trail
    jobs = []
    cursor = None
    while True:
        page = await store.list_jobs(JobFilter(queue=QUEUE), limit=1000, cursor=cursor)
        jobs += page.jobs
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(jobs) == N_JOBS
    assert {str(j.id) for j in jobs} == set(claimed)
    assert all(j.status == JobStatus.COMPLETED and j.attempt == 1 for j in jobs)

    sem = asyncio.Semaphore(8)

    async def claim_events(job_id) -> int:
        async with sem:
            events = await store.job_events(job_id)
        return sum(1 for e in events if e.to_status == JobStatus.RUNNING)

    claims_per_job = await asyncio.gather(*[claim_events(j.id) for j in jobs])
    bad = [(j.id, n) for j, n in zip(jobs, claims_per_job, strict=True) if n != 1]
    assert not bad, f"{len(bad)} jobs without exactly one claim event, e.g. {bad[:3]}"
