"""conveyor.Client and conveyor.AsyncClient against a real server on a loopback port."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import conveyor
from conveyor.client import (
    AlreadyExistsError,
    IllegalTransitionError,
    InvalidInputError,
    JobNotFoundError,
    QueueFullError,
    ScheduleNotFoundError,
)
from conveyor.domain.job import JobStatus
from conveyor.domain.records import Completion
from conveyor.store import Store
from tests.client.conftest import admin_token
from tests.helpers import dead_job, running_job


async def test_sync_client_round_trip(server_url: str, store: Store) -> None:
    with conveyor.Client(server_url, token=admin_token()) as c:
        job = c.submit("email.send", {"to": "a@b.c"}, queue="email", priority=3, tags=["x"])
        assert job.status == JobStatus.QUEUED and job.queue == "email" and job.priority == 3
        assert c.get(job.id) == job
        again = c.submit("email.send", {}, idempotency_key="once")
        assert c.submit("email.send", {}, idempotency_key="once").id == again.id
        jobs = c.submit_many([{"type": "t", "payload": {"i": i}} for i in range(5)])
        assert [j.payload["i"] for j in jobs] == list(range(5))
        listed = list(c.list(page_size=2, type="t"))
        assert {j.id for j in listed} == {j.id for j in jobs}
        assert c.cancel(job.id).status == JobStatus.CANCELLED
        assert [e.to_status for e in c.events(job.id)] == [JobStatus.QUEUED, JobStatus.CANCELLED]
        with pytest.raises(TimeoutError):
            c.wait(jobs[0].id, timeout=0.2)
        assert c.wait(job.id, timeout=1).status == JobStatus.CANCELLED
        assert c.ready() is True


async def test_async_client_wait_and_retry(server_url: str, store: Store) -> None:
    async with conveyor.AsyncClient(server_url, token=admin_token()) as c:
        running = await running_job(store)

        async def finish() -> None:
            await asyncio.sleep(0.1)
            await store.complete_many([Completion(running.id, running.lease_token, 42)])

        task = asyncio.create_task(finish())
        done = await c.wait(running.id, timeout=5)
        await task
        assert done.status == JobStatus.COMPLETED and done.result == 42

        dead = await dead_job(store)
        requeued = await c.retry(dead.id, payload={"fixed": True})
        assert requeued.status == JobStatus.QUEUED and requeued.payload == {"fixed": True}
        seen = [j.id async for j in c.list(page_size=1, status="queued")]
        assert seen == [dead.id]


async def test_errors_are_typed(server_url: str, store: Store) -> None:
    async with conveyor.AsyncClient(server_url, token=admin_token()) as c:
        with pytest.raises(JobNotFoundError) as nf:
            await c.get(uuid.uuid4())
        assert isinstance(nf.value, conveyor.JobNotFound) and nf.value.status == 404
        with pytest.raises(InvalidInputError) as bad:
            await c.submit("t", priority=10**9)
        assert isinstance(bad.value, conveyor.InvalidInput) and bad.value.field == "priority"
        job = await c.submit("t")
        await c.cancel(job.id)
        with pytest.raises(IllegalTransitionError):
            await c.cancel(job.id)
        await c.update_queue("tiny", max_depth=1)
        await c.submit("t", queue="tiny")
        with pytest.raises(QueueFullError) as full:
            await c.submit("t", queue="tiny")
        assert isinstance(full.value, conveyor.QueueFull) and full.value.retry_after >= 1
        with pytest.raises(ScheduleNotFoundError):
            await c.trigger_schedule("nope")


def test_sync_schedules_queues_dead_and_workers(server_url: str, store: Store) -> None:
    with conveyor.Client(server_url, token=admin_token()) as c:
        s = c.put_schedule("every-minute", "* * * * *", "tick", payload={"n": 1})
        assert s.next_run_at is not None
        assert [x.name for x in c.schedules()] == ["every-minute"]
        assert c.update_schedule("every-minute", enabled=False).enabled is False
        assert c.get_schedule("every-minute").enabled is False
        fired = c.trigger_schedule("every-minute")
        assert fired.type == "tick" and fired.payload == {"n": 1}
        c.delete_schedule("every-minute")
        assert c.schedules() == []
        assert c.update_queue("default", paused=True).paused is True
        assert any(q.name == "default" and q.paused for q in c.queues())
        assert c.workers() == []
        out = c.requeue_dead([uuid.uuid4()])
        assert out.requeued == [] and out.failed[0].code == "job_not_found"
        assert c.discard_dead([uuid.uuid4()]) == 0


def test_client_sends_any_json_payload(server_url: str, store: Store) -> None:
    with conveyor.Client(server_url, token=admin_token()) as c:
        for payload in ("user@example.com", [1, 2], 3, None):
            job = c.submit("t", payload)
            assert job.payload == payload and c.get(job.id).payload == payload
        assert c.submit("t").payload == {}  # left out: {}
        (listed,) = c.submit_many([{"type": "t", "payload": "x"}])
        assert listed.payload == "x"


async def test_create_schedule_refuses_a_taken_name_put_replaces(
    server_url: str, store: Store
) -> None:
    async with conveyor.AsyncClient(server_url, token=admin_token()) as c:
        await c.create_schedule("nightly", "0 3 * * *", "report")
        with pytest.raises(AlreadyExistsError) as taken:
            await c.create_schedule("nightly", "0 4 * * *", "report")
        assert taken.value.status == 409 and isinstance(taken.value, conveyor.ConveyorError)
        assert (await c.get_schedule("nightly")).cron == "0 3 * * *"
        assert (await c.put_schedule("nightly", "0 4 * * *", "report")).cron == "0 4 * * *"
        assert (await c.put_schedule("weekly", "0 4 * * 1", "report")).name == "weekly"
        assert [s.name for s in await c.schedules()] == ["nightly", "weekly"]
