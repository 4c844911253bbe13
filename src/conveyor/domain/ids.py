"""Job ids are UUIDv7: time-ordered, so ids sort by creation and index inserts stay append-only."""

from __future__ import annotations

import uuid

import uuid_utils


def new_job_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)
