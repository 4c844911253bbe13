"""The Redis transport's member encoding sorts exactly like the store's claim order."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from conveyor.domain.ids import new_job_id
from conveyor.domain.limits import MAX_PRIORITY
from conveyor.transport.redis.keys import QueueKeys, member, member_id


def test_members_sort_by_priority_desc_then_run_at_then_id() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    jobs = [
        (
            new_job_id(),
            rng.choice([-MAX_PRIORITY, -3, 0, 1, 5, MAX_PRIORITY]),
            base + timedelta(microseconds=rng.choice([0, 1, 999_999, 10**12])),
        )
        for _ in range(300)
    ]
    by_claim_order = sorted(jobs, key=lambda j: (-j[1], j[2], j[0]))
    by_member = sorted(jobs, key=lambda j: member(*j))
    assert by_member == by_claim_order


def test_member_id_reads_the_id_back() -> None:
    job_id = uuid.uuid4()
    m = member(job_id, -7, datetime.now(UTC))
    assert member_id(m) == job_id
    assert member_id(m.encode()) == job_id


def test_a_queues_keys_share_one_cluster_hash_tag() -> None:
    keys = QueueKeys.of("conveyor", "email")
    assert keys.all() == [
        "conveyor:{email}:ready",
        "conveyor:{email}:processing",
        "conveyor:{email}:wake",
    ]
