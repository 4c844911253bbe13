"""Conveyor: distributed job processing for Python."""

from conveyor.app import App
from conveyor.client import AsyncClient, Client
from conveyor.errors import (
    ConveyorError,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    QueueFull,
    ScheduleNotFound,
)
from conveyor.models import Job, JobStatus, NewJob, NonRetryable, RetryPolicy
from conveyor.worker.context import JobContext

__all__ = [
    "App",
    "AsyncClient",
    "Client",
    "ConveyorError",
    "IllegalTransition",
    "InvalidInput",
    "Job",
    "JobContext",
    "JobNotFound",
    "JobStatus",
    "NewJob",
    "NonRetryable",
    "QueueFull",
    "RetryPolicy",
    "ScheduleNotFound",
]
