"""Lifecycle events: what other services hear about a job (issue 15).

A store that publishes events records each transition in its outbox as the status the job
left and the job after the change (an OutboxRow); the relay turns rows into CloudEvents of
the types below. Promotion (a scheduled or retrying job whose time has come becoming queued)
is not an event: it is the passing of time, not a decision, and the next event's data shows it.
It is recorded all the same, as the Kafka transport dispatches the job it made ready from its
row (`is_promotion` tells the relay not to publish it).
"""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.domain.job import Job, JobStatus

#: Every event type, in lifecycle order; a type on the wire is `conveyor.job.<name>`.
EVENT_NAMES = (
    "created",
    "scheduled",
    "started",
    "retrying",
    "completed",
    "dead",
    "cancelled",
    "requeued",
)
TYPE_PREFIX = "conveyor.job."

_BY_STATUS = {
    JobStatus.RUNNING: "started",
    JobStatus.RETRYING: "retrying",
    JobStatus.COMPLETED: "completed",
    JobStatus.DEAD: "dead",
    JobStatus.CANCELLED: "cancelled",
    # Back to waiting from a running (lease lost, released) or a dead (requeued from the DLQ)
    # job: it will run again now, or at its run_at.
    JobStatus.QUEUED: "requeued",
    JobStatus.SCHEDULED: "scheduled",
}


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One recorded transition. `seq` orders a job's transitions (a later one has a larger
    seq); `from_status` is None when the job was created; `job` is its state after."""

    seq: int
    from_status: JobStatus | None
    job: Job


def is_promotion(from_status: JobStatus | None, to_status: JobStatus) -> bool:
    """A waiting job whose time came: recorded for dispatch, not published as an event."""
    return to_status is JobStatus.QUEUED and from_status in (
        JobStatus.SCHEDULED,
        JobStatus.RETRYING,
    )


def event_name(from_status: JobStatus | None, to_status: JobStatus) -> str:
    """The event a transition is: a new job is `created` whether it runs now or waits (its
    data's status and run_at say which); otherwise the status it entered names it."""
    if from_status is None:
        return "created"
    return _BY_STATUS[to_status]


def event_type(name: str) -> str:
    return TYPE_PREFIX + name
