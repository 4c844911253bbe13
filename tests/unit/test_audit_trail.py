"""store.common.audit_trail: a job's history rebuilt from its row and its stored rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from conveyor.domain.job import Job, JobStatus
from conveyor.store.common import StoredEvent, audit_trail

S = JobStatus
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(
    status: JobStatus, attempt: int = 0, started_at: datetime | None = None, worker_id: str = ""
) -> Job:
    return Job(
        id=uuid.uuid4(), queue="q", type="t", payload={}, priority=0, status=status, run_at=T0,
        attempt=attempt, max_retries=3, timeout=60.0, unique_key=None, tags=[], tenant=None,
        result=None, last_error=None, worker_id=worker_id or None, lease_expires_at=None,
        lease_token=attempt, created_at=T0, started_at=started_at, finished_at=None,
        updated_at=T0,
    )  # fmt: skip


def row(
    seconds: float,
    from_status: JobStatus | None,
    to_status: JobStatus,
    attempt: int = 1,
    started: float | None = None,
    worker: str | None = None,
) -> StoredEvent:
    return StoredEvent(
        at(seconds), from_status, to_status, attempt, worker, None,
        None if started is None else at(started),
    )  # fmt: skip


def shape(events: list) -> list[tuple]:
    return [(e.id, e.from_status, e.to_status, e.attempt, e.at) for e in events]


def test_new_job_is_its_creation() -> None:
    assert shape(audit_trail(job(S.QUEUED), [])) == [(1, None, S.QUEUED, 0, T0)]
    assert shape(audit_trail(job(S.SCHEDULED), [])) == [(1, None, S.SCHEDULED, 0, T0)]


def test_running_job_shows_its_claim_from_the_job_row() -> None:
    j = job(S.RUNNING, attempt=1, started_at=at(2), worker_id="w1")
    events = audit_trail(j, [])
    assert shape(events) == [(1, None, S.QUEUED, 0, T0), (2, S.QUEUED, S.RUNNING, 1, at(2))]
    assert events[1].worker_id == "w1"


def test_finished_attempt_row_expands_into_claim_and_outcome() -> None:
    j = job(S.DEAD, attempt=1, started_at=at(2))
    events = audit_trail(j, [row(3, S.RUNNING, S.DEAD, started=2, worker="w1")])
    assert shape(events) == [
        (1, None, S.QUEUED, 0, T0),
        (2, S.QUEUED, S.RUNNING, 1, at(2)),
        (3, S.RUNNING, S.DEAD, 1, at(3)),
    ]
    assert [e.worker_id for e in events] == [None, "w1", "w1"]


def test_created_scheduled_is_read_from_the_first_transition() -> None:
    j = job(S.RUNNING, attempt=1, started_at=at(5), worker_id="w2")
    events = audit_trail(j, [row(4, S.SCHEDULED, S.QUEUED, attempt=0)])
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, S.SCHEDULED),
        (S.SCHEDULED, S.QUEUED),
        (S.QUEUED, S.RUNNING),
    ]


def test_ids_stay_put_when_the_running_attempt_ends() -> None:
    running = audit_trail(job(S.RUNNING, attempt=1, started_at=at(2), worker_id="w"), [])
    completed = job(S.COMPLETED, attempt=1, started_at=at(2), worker_id="w")
    completed.finished_at = at(3)
    done = audit_trail(completed, [])
    assert shape(done)[: len(running)] == shape(running)


def test_rows_written_before_migration_0005_read_back_unchanged() -> None:
    old = [
        row(0, None, S.QUEUED, attempt=0),
        row(2, S.QUEUED, S.RUNNING),
        row(3, S.RUNNING, S.COMPLETED),
    ]
    events = audit_trail(job(S.COMPLETED, attempt=1, started_at=at(2)), old)
    assert [(e.from_status, e.to_status) for e in events] == [
        (None, S.QUEUED),
        (S.QUEUED, S.RUNNING),
        (S.RUNNING, S.COMPLETED),
    ]
    # an old claim row of the running attempt is not repeated from the job row
    running = audit_trail(job(S.RUNNING, attempt=1, started_at=at(2)), old[:2])
    assert len(running) == 2


def test_completed_first_time_is_all_in_the_job_row() -> None:
    j = job(S.COMPLETED, attempt=1, started_at=at(2), worker_id="w1")
    j.finished_at = at(3)
    events = audit_trail(j, [])
    assert shape(events) == [
        (1, None, S.QUEUED, 0, T0),
        (2, S.QUEUED, S.RUNNING, 1, at(2)),
        (3, S.RUNNING, S.COMPLETED, 1, at(3)),
    ]
    assert [e.worker_id for e in events] == [None, "w1", "w1"]


def test_completed_after_a_retry() -> None:
    j = job(S.COMPLETED, attempt=2, started_at=at(6), worker_id="w2")
    j.finished_at = at(7)
    rows = [row(3, S.RUNNING, S.RETRYING, started=2, worker="w1"), row(5, S.RETRYING, S.QUEUED)]
    assert [(e.from_status, e.to_status, e.attempt) for e in audit_trail(j, rows)] == [
        (None, S.QUEUED, 0),
        (S.QUEUED, S.RUNNING, 1),
        (S.RUNNING, S.RETRYING, 1),
        (S.RETRYING, S.QUEUED, 1),
        (S.QUEUED, S.RUNNING, 2),
        (S.RUNNING, S.COMPLETED, 2),
    ]
