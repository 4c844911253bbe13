"""The checker itself: it passes a clean history and catches each kind of violation."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime

import pytest

from conveyor.domain.job import Job, JobStatus
from tests.faults.history import Run, judge, runs_of

pytestmark = pytest.mark.faults

A, B = "job-a", "job-b"


def job(status: JobStatus = JobStatus.COMPLETED, attempt: int = 1, pid: int = 1) -> Job:
    now = datetime.now(UTC)
    return Job(
        id=uuid.uuid4(),
        queue="default",
        type="t",
        payload={},
        priority=0,
        status=status,
        run_at=now,
        attempt=attempt,
        max_retries=3,
        timeout=60,
        unique_key=None,
        tags=[],
        tenant=None,
        result={"pid": pid},
        last_error=None,
        worker_id=None,
        lease_expires_at=None,
        lease_token=attempt,
        created_at=now,
        started_at=now,
        finished_at=now,
        updated_at=now,
    )


def test_runs_pair_start_and_end_lines_and_end_with_their_process() -> None:
    lines = [
        {"event": "start", "job": A, "attempt": 1, "pid": 1, "at": 1.0},
        {"event": "start", "job": B, "attempt": 1, "pid": 2, "at": 1.5},
        {"event": "finish", "job": A, "attempt": 1, "pid": 1, "at": 2.0},
        {"event": "start", "job": B, "attempt": 2, "pid": 3, "at": 5.0},
    ]
    assert sorted(runs_of(lines, {2: 3.0}), key=lambda r: r.start) == [
        Run(A, 1, 1, 1.0, 2.0, True),
        Run(B, 1, 2, 1.5, 3.0, False),  # killed with its process
        Run(B, 2, 3, 5.0, math.inf, False),  # still running, as far as anyone knows
    ]


def test_a_clean_history_passes_and_a_rerun_after_a_fault_is_allowed() -> None:
    runs = [Run(A, 1, 1, 0.0, 10.0, False), Run(A, 2, 2, 5.0, 6.0, True)]
    v = judge(runs, {A}, {A: job(attempt=2, pid=2)}, {A: 1}, faults={1: 3.0})
    assert v.ok, v.summary()
    assert (v.reruns, v.overlapping_reruns) == (1, 1)


@pytest.mark.parametrize(
    ("runs", "faults", "why"),
    [
        # the same attempt in two places: handed back while its handler still ran
        ([Run(A, 1, 1, 0.0, 10.0, True), Run(A, 1, 2, 5.0, 6.0, True)], {}, "no fault"),
        # a later attempt overlapping a process that was never faulted
        ([Run(A, 1, 1, 0.0, 10.0, True), Run(A, 2, 2, 5.0, 6.0, True)], {}, "no fault"),
        # started before the fault that would explain it
        ([Run(A, 1, 1, 0.0, 10.0, True), Run(A, 2, 2, 5.0, 6.0, True)], {1: 5.5}, "too early"),
    ],
)
def test_running_in_two_places_is_caught(
    runs: list[Run], faults: dict[int, float], why: str
) -> None:
    v = judge(runs, {A}, {A: job(attempt=runs[1].attempt, pid=2)}, {A: 1}, faults)
    assert not v.ok and len(v.overlaps) == 1, why


def test_lost_twice_completed_and_unexplained_results_are_caught() -> None:
    runs = [Run(A, 1, 1, 0.0, 1.0, True)]
    jobs = {A: job(attempt=1, pid=9), B: job(JobStatus.QUEUED)}
    v = judge(runs, {A, B, "never-stored"}, jobs, {A: 2, B: 0}, faults={})
    assert v.lost == ["job-b", "never-stored"]
    assert v.completed_twice == [A]
    assert v.unexplained_results == [A]  # pid 9 never finished a run of it
    assert not v.ok
