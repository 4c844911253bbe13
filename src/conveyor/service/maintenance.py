"""Housekeeping any process may run concurrently: both steps use SKIP LOCKED-style claims."""

from __future__ import annotations

import structlog

from conveyor import metrics
from conveyor.domain.records import ReapedJob
from conveyor.store.base import Store
from conveyor.transport import Transport

log = structlog.get_logger("conveyor.maintenance")


async def run_maintenance(
    store: Store, transport: Transport | None = None
) -> tuple[int, list[ReapedJob]]:
    """Promote due scheduled/retrying jobs and reap expired leases; then let the transport,
    if any, recover and re-dispatch (promoted and requeued jobs reach it this way); vacuum
    when the database's own vacuum lags."""
    promoted = await store.promote_due()
    reaped = await store.reap_expired()
    if transport is not None:
        await transport.sweep(store)
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
