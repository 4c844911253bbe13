"""Lifecycle events without a broker: which transition is which event, the CloudEvent built
from an outbox row, the `conveyor events` filters and the client options passed through."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from conveyor.config import Settings
from conveyor.domain.events import EVENT_NAMES, OutboxRow, event_name
from conveyor.domain.job import Job, JobStatus
from conveyor.transport import kafka
from conveyor.transport.events import cloud_event, encode, matches, source_for
from conveyor.wire import job_out

S = JobStatus
T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("from_status", "to_status", "name"),
    [
        (None, S.QUEUED, "created"),
        (None, S.SCHEDULED, "created"),
        (S.QUEUED, S.RUNNING, "started"),
        (S.RUNNING, S.RETRYING, "retrying"),
        (S.RUNNING, S.COMPLETED, "completed"),
        (S.RUNNING, S.DEAD, "dead"),
        (S.QUEUED, S.CANCELLED, "cancelled"),
        (S.RUNNING, S.CANCELLED, "cancelled"),
        (S.DEAD, S.QUEUED, "requeued"),
        (S.RUNNING, S.QUEUED, "requeued"),
        (S.RUNNING, S.SCHEDULED, "scheduled"),
    ],
)
def test_each_transition_is_its_event(
    from_status: JobStatus | None, to_status: JobStatus, name: str
) -> None:
    assert event_name(from_status, to_status) == name
    assert name in EVENT_NAMES


def job(**kw: object) -> Job:
    base = Job(
        id=uuid.UUID("01890000-0000-7000-8000-000000000001"), queue="mail", type="mail.send",
        payload={"to": "ada"}, priority=0, status=S.COMPLETED, run_at=T0, attempt=1,
        max_retries=3, timeout=30.0, unique_key=None, tags=["x"], tenant=None,
        result={"ok": True}, last_error=None, worker_id=None, lease_expires_at=None,
        lease_token=7, created_at=T0, started_at=T0, finished_at=T0, updated_at=T0,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_cloud_event_carries_the_job_as_the_api_shows_it() -> None:
    j = job()
    event = orjson.loads(encode(cloud_event(OutboxRow(41, S.RUNNING, j), source_for("conveyor"))))
    assert event == {
        "specversion": "1.0",
        "id": f"{j.id}.41",
        "source": "/conveyor/jobs",
        "type": "conveyor.job.completed",
        "subject": str(j.id),
        "time": "2030-01-01T09:00:00+00:00",
        "datacontenttype": "application/json",
        "data": orjson.loads(orjson.dumps(job_out(j))),
    }
    assert "lease_token" not in event["data"]  # a worker's secret stays in the store


def test_filters_match_queue_and_type_in_either_spelling() -> None:
    event = cloud_event(OutboxRow(1, S.RUNNING, job()), "/conveyor/jobs")
    assert matches(event)
    assert matches(event, queue="mail", type="completed")
    assert matches(event, type="conveyor.job.completed")
    assert not matches(event, queue="sms")
    assert not matches(event, type="dead")


def test_client_options_pass_sasl_and_tls_through() -> None:
    plain = kafka.client_options(Settings(kafka_bootstrap="a:9092,b:9092"))
    assert plain["bootstrap_servers"] == ["a:9092", "b:9092"]
    assert plain["security_protocol"] == "PLAINTEXT" and "ssl_context" not in plain
    secured = kafka.client_options(
        Settings(
            kafka_bootstrap="a:9093",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_sasl_username="conveyor",
            kafka_sasl_password="s3cret",
        )
    )
    assert isinstance(secured["ssl_context"], ssl.SSLContext)
    assert (secured["sasl_mechanism"], secured["sasl_plain_username"]) == (
        "SCRAM-SHA-512",
        "conveyor",
    )
    assert secured["sasl_plain_password"] == "s3cret"
    with pytest.raises(ValueError, match="CONVEYOR_KAFKA_BOOTSTRAP"):
        kafka.client_options(Settings())


def test_topics_take_the_prefix() -> None:
    settings = Settings(kafka_topic_prefix="acme")
    assert kafka.topic(settings, kafka.EVENTS) == "acme.events"
    assert kafka.topic(settings, kafka.DEAD) == "acme.dead"
    assert not settings.publishes_events
    assert Settings(kafka_bootstrap="a:9092").publishes_events


def test_a_job_keeps_its_partition() -> None:
    key = b"01890000-0000-7000-8000-000000000001"
    chosen = {kafka.partition_of(key, [0, 1, 2], [2]) for _ in range(3)}
    assert len(chosen) == 1 and chosen <= {0, 1, 2}
    spread = {kafka.partition_of(str(uuid.uuid4()).encode(), [0, 1, 2], []) for _ in range(100)}
    assert spread == {0, 1, 2}


def test_an_event_too_large_for_the_broker_goes_without_payload_and_result() -> None:
    big = job(payload={"blob": "x" * 5000}, result={"blob": "y" * 5000}, last_error="e" * 5000)
    event = cloud_event(OutboxRow(1, S.RUNNING, big), "/conveyor/jobs")
    whole = orjson.loads(encode(event, limit=20_000))
    assert whole["data"]["payload"] == {"blob": "x" * 5000} and "conveyortruncated" not in whole
    cut = orjson.loads(encode(event, limit=8_000))
    assert cut["conveyortruncated"] is True
    assert (cut["data"]["payload"], cut["data"]["result"]) == (None, None)
    assert cut["data"]["last_error"] == "e" * 5000 and cut["id"] == whole["id"]
    tiny = encode(event, limit=4_000)
    assert len(tiny) <= 4_000 and orjson.loads(tiny)["data"]["last_error"] == "e" * 2000
