"""Housekeeping any process may run concurrently: both steps use SKIP LOCKED-style claims."""

from __future__ import annotations

import structlog

from conveyor import metrics
from conveyor.domain.records import ReapedJob
from conveyor.store.base import Store

log = structlog.get_logger("conveyor.maintenance")


async def run_maintenance(store: Store) -> tuple[int, list[ReapedJob]]:
    """Promote due scheduled/retrying jobs, reap expired leases, vacuum when the database lags."""
    promoted = await store.promote_due()
    reaped = await store.reap_expired()
    await store.vacuum()
    metrics.count_reaped(reaped)
    for r in reaped:
        log.warning(
            "lease expired; job recovered",
            job_id=str(r.job_id),
            worker_id=r.worker_id,
            attempt=r.attempt,
            new_status=r.new_status.value,
        )
    return promoted, reaped
