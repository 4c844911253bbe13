"""The Redis transport's key layout and the encoding of a ready job as a set member (pure).

Per queue Q, under a prefix P (`Settings.transport_key_prefix`, default "conveyor"):

* `P:{Q}:ready`: sorted set of the ids ready to claim. Every score is 0 and the member spells
  the claim order, so ZPOPMIN (which breaks score ties lexicographically) pops in exactly the
  store's order, priority desc, then run_at, then id: `PPPPPPP:TTTTTTTTTTTTTTTTTT:<uuid>`,
  P = MAX_PRIORITY - priority (7 digits), T = run_at in microseconds since the epoch (18
  digits), then the job id (UUIDv7: submission order). A float score could not hold all three.
* `P:{Q}:processing`: sorted set of the members taken by workers whose store claim has not
  been acknowledged yet, scored by the deadline (Redis server time, ms) after which the
  recovery puts them back into ready.
* `P:{Q}:wake`: a list of at most one token; workers wait on it with BLPOP while ready is
  empty, and whoever adds ids pushes it.

The `{Q}` hash tag puts a queue's three keys in one Redis Cluster slot, so each script, which
touches one queue's keys only, runs on Redis Cluster or Valkey unchanged.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from conveyor.domain.limits import MAX_PRIORITY

_PRIORITY_DIGITS = len(str(2 * MAX_PRIORITY))
_TIME_DIGITS = 18


@dataclass(frozen=True, slots=True)
class QueueKeys:
    ready: str
    processing: str
    wake: str

    @classmethod
    def of(cls, prefix: str, queue: str) -> QueueKeys:
        base = f"{prefix}:{{{queue}}}"
        return cls(f"{base}:ready", f"{base}:processing", f"{base}:wake")

    def all(self) -> list[str]:
        return [self.ready, self.processing, self.wake]


def member(job_id: uuid.UUID, priority: int, run_at: datetime) -> str:
    """The ready-set member of a job: sorts like the store's claim order."""
    micros = max(0, int(run_at.timestamp() * 1_000_000))
    return f"{MAX_PRIORITY - priority:0{_PRIORITY_DIGITS}d}:{micros:0{_TIME_DIGITS}d}:{job_id}"


def member_id(item: str | bytes) -> uuid.UUID:
    """The job id of a member (its last 36 characters)."""
    text = item.decode() if isinstance(item, bytes) else item
    return uuid.UUID(text[-36:])
