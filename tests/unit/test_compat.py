"""The compatibility surfaces' pure rules: status names, the typeless-job rule, /stats, the
bytes marker, and the anonymous-caller setting."""

from __future__ import annotations

import pytest

from conveyor.api.compat.caller import anonymous_principal
from conveyor.domain.compat import (
    JOBS_STATUS,
    TASK_STATUS,
    TASKQUEUE_STATUS,
    jobs_type,
    task_stats,
)
from conveyor.domain.errors import ConfigError, InvalidInput
from conveyor.domain.job import JobStatus
from conveyor.domain.payload import bytes_to_json, for_handler, json_to_bytes, to_json
from conveyor.domain.records import Role


@pytest.mark.parametrize("table", [JOBS_STATUS, TASKQUEUE_STATUS, TASK_STATUS])
def test_every_status_has_a_name_on_every_surface(table: dict[JobStatus, str]) -> None:
    assert set(table) == set(JobStatus)


def test_the_issue_s_status_mapping() -> None:
    s = JobStatus
    assert JOBS_STATUS[s.QUEUED] == JOBS_STATUS[s.SCHEDULED] == "pending"
    assert JOBS_STATUS[s.RUNNING] == "processing"
    assert JOBS_STATUS[s.RETRYING] == "failed"
    assert JOBS_STATUS[s.DEAD] == "dead-lettered"
    assert [TASKQUEUE_STATUS[x] for x in (s.QUEUED, s.RUNNING, s.COMPLETED, s.RETRYING)] == [
        "pending",
        "running",
        "completed",
        "failed",
    ]


def test_stats_group_waiting_running_and_dead() -> None:
    counts = {JobStatus.QUEUED: 2, JobStatus.SCHEDULED: 1, JobStatus.RETRYING: 4,
              JobStatus.RUNNING: 3, JobStatus.DEAD: 5, JobStatus.COMPLETED: 9}  # fmt: skip
    assert task_stats(counts) == {"pending": 7, "processing": 3, "dead_letter": 5}
    assert task_stats({}) == {"pending": 0, "processing": 0, "dead_letter": 0}


def test_typeless_jobs_take_a_type_by_the_documented_rule() -> None:
    assert jobs_type("explicit", "email", {"type": "demo"}) == "explicit"
    assert jobs_type(None, "email", {"type": "demo"}) == "email"  # platform A: the queue
    assert jobs_type(None, None, {"type": "demo", "value": 123}) == "demo"  # platform B
    for payload in ({"type": 5}, {}, ["demo"], "demo", None):
        with pytest.raises(InvalidInput) as exc:
            jobs_type(None, None, payload)
        assert exc.value.field == "type"


def test_bytes_travel_as_a_marker_and_come_back_as_bytes() -> None:
    raw = b"\x00\xff raw"
    marker = bytes_to_json(raw)
    assert marker == {"$bytes": "AP8gcmF3"}
    assert json_to_bytes(marker) == raw and for_handler(marker) == raw
    assert to_json(raw) == marker and to_json(bytearray(raw)) == marker
    for not_a_marker in ({"$bytes": "not base64!"}, {"$bytes": 1}, {"$bytes": "", "x": 1}, "s"):
        assert json_to_bytes(not_a_marker) is None
        assert for_handler(not_a_marker) == not_a_marker
    assert to_json({"a": 1}) == {"a": 1}


def test_anonymous_mapping_is_off_unless_set_and_checked() -> None:
    assert anonymous_principal(None) is None and anonymous_principal("") is None
    user = anonymous_principal("user:legacy")
    assert user is not None and (user.role, user.tenant) == (Role.USER, "legacy")
    admin = anonymous_principal("admin")
    assert admin is not None and (admin.role, admin.scope) == (Role.ADMIN, None)
    for bad in ("user", "worker", "root:x", "user:bad tenant!"):
        with pytest.raises(ConfigError):
            anonymous_principal(bad)
