"""How a worker's outcomes reach the store: batched under load, at once after a quiet spell."""

from __future__ import annotations

import asyncio
import uuid

from conveyor import JobStatus
from conveyor.domain.job import NewJob
from conveyor.domain.records import Completion
from conveyor.store import open_store
from conveyor.worker.outcomes import OutcomeBatcher
from tests.helpers import wait_until


async def test_a_lone_outcome_is_written_at_once_and_a_busy_spell_batches(
    sqlite_url: str,
) -> None:
    store = open_store(sqlite_url)
    await store.connect()
    await store.migrate()
    # A delay no test waits out: whatever is written, was written without waiting for it.
    batcher = OutcomeBatcher(store, max_batch=2, max_delay=600)
    task = asyncio.create_task(batcher.run())
    try:
        await store.enqueue_many([NewJob(type="t") for _ in range(3)])
        first, second, third = await store.claim("w", ["default"], 3, 30)

        async def completed(job_id: uuid.UUID) -> bool:
            return (await store.get_job(job_id)).status is JobStatus.COMPLETED

        batcher.add(Completion(first.id, first.lease_token))
        await wait_until(lambda: completed(first.id), message="the lone outcome")
        # Right after a flush, the next outcome waits for company (or the delay)...
        batcher.add(Completion(second.id, second.lease_token))
        for _ in range(20):
            await asyncio.sleep(0)
        assert batcher.pending_ids() == {second.id}
        # ...which a full batch brings.
        batcher.add(Completion(third.id, third.lease_token))
        await wait_until(lambda: completed(third.id), message="the full batch")
        assert await completed(second.id)
    finally:
        await batcher.close()
        await asyncio.wait_for(task, 5)
        await store.close()
