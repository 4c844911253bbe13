"""The real executor over RemoteWorkerStore: batches, retries, dead letters, cancellation,
long-poll wake-ups, registration; the server's housekeeping recovers abandoned leases."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import JobStatus, NewJob
from conveyor.domain.records import Lease
from conveyor.grpc.gen.conveyor.v1 import worker_pb2 as wpb
from conveyor.worker import JobContext, Registry, Worker
from tests.grpc.conftest import Rig, RigFactory, running
from tests.helpers import counts, wait_until


async def test_drains_a_backlog_in_batches(rig: Rig) -> None:
    registry = Registry()
    registry.register("t.sq", lambda payload: payload["i"] ** 2)
    results = await rig.service.submit_many(
        [NewJob(type="t.sq", payload={"i": i}) for i in range(300)]
    )
    async with running(await rig.remote_worker(registry, concurrency=50)):

        async def drained() -> bool:
            return (await counts(rig.store)).get(JobStatus.COMPLETED) == 300

        await wait_until(drained, timeout=20, message="all jobs to complete")
    for r in results[:5]:
        assert (await rig.store.get_job(r.job.id)).result == r.job.payload["i"] ** 2


async def test_failures_retry_then_dead_letter(rig: Rig) -> None:
    registry = Registry()

    def boom(payload: dict[str, Any]) -> None:
        raise ValueError("always")

    registry.register("t.boom", boom, max_retries=1)
    job = (await rig.service.submit(NewJob(type="t.boom", max_retries=1))).job
    async with running(await rig.remote_worker(registry)):

        async def dead() -> bool:
            return (await rig.store.get_job(job.id)).status == JobStatus.DEAD

        await wait_until(dead, timeout=10, message="job to be dead-lettered")
    final = await rig.store.get_job(job.id)
    assert final.attempt == 2
    assert final.last_error and "ValueError: always" in final.last_error


async def test_cancelling_a_running_job_reaches_the_remote_handler(rig: Rig) -> None:
    registry = Registry()
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def long(payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # runs until cancelled
        finally:
            stopped.set()

    registry.register("t.long", long)
    job = (await rig.service.submit(NewJob(type="t.long"))).job
    async with running(await rig.remote_worker(registry)):
        await asyncio.wait_for(started.wait(), 10)
        await rig.service.cancel(job.id)
        await asyncio.wait_for(stopped.wait(), 5)  # the next heartbeat said: not yours
    assert (await rig.store.get_job(job.id)).status == JobStatus.CANCELLED


async def test_long_poll_starts_new_jobs_promptly_with_few_calls(make_rig: RigFactory) -> None:
    rig = await make_rig(grpc_fetch_wait=5.0)
    registry = Registry()
    ran: dict[uuid.UUID, float] = {}

    async def stamp(payload: dict[str, Any], ctx: JobContext) -> None:
        ran[ctx.job_id] = time.monotonic()

    registry.register("t.stamp", stamp)
    worker = await rig.remote_worker(registry)
    remote = rig.remotes[-1]
    fetches = {"n": 0}
    claim = remote.claim

    async def counting_claim(*a: Any, **kw: Any) -> Any:
        fetches["n"] += 1
        return await claim(*a, **kw)

    remote.claim = counting_claim  # type: ignore[method-assign]
    parked = asyncio.Event()
    store_wait = rig.store.wait_for_jobs

    async def watched_wait(*a: Any, **kw: Any) -> None:
        parked.set()  # the server found nothing and is now long-polling for the worker
        await store_wait(*a, **kw)

    rig.store.wait_for_jobs = watched_wait  # type: ignore[method-assign]
    async with running(worker):
        await wait_until(parked.is_set, message="the fetch to park on the server")
        t0 = time.monotonic()
        job = (await rig.service.submit(NewJob(type="t.stamp"))).job
        await wait_until(lambda: job.id in ran, timeout=5, message="job to start")
        assert ran[job.id] - t0 < 1.0, "the parked fetch should have been woken"
    assert fetches["n"] <= 4, fetches


async def test_registers_and_deregisters(rig: Rig) -> None:
    registry = Registry()
    registry.register("t.x", lambda payload: None)
    worker = await rig.remote_worker(registry, concurrency=7, queues=["a", "b"])
    async with running(worker):

        async def listed() -> Any:
            return [w for w in await rig.store.list_workers() if w.id == worker.id]

        (info,) = await wait_until(listed, message="worker row")
        assert info.queues == ["a", "b"] and info.concurrency == 7
        assert info.meta.get("types") == ["t.x"]
    assert await rig.store.list_workers() == []


def test_a_remote_store_cannot_run_maintenance(rig: Rig) -> None:
    from conveyor.grpc.remote import RemoteWorkerStore

    with pytest.raises(ValueError, match="maintenance"):
        Worker(RemoteWorkerStore(rig.url), Registry(), maintenance=True)


async def test_server_reaps_leases_a_silent_remote_worker_abandoned(rig: Rig) -> None:
    """A worker that fetched a job and then went silent (no heartbeat, no outcome): the
    server's housekeeping loop requeues the job once the lease expires."""
    job = (await rig.service.submit(NewJob(type="t.x"))).job
    stub = rig.workers()
    got = await stub.Fetch(
        wpb.FetchRequest(worker_id="ghost", queues=["default"], max_jobs=1, lease_seconds=0.3)
    )
    assert [c.job.id for c in got.jobs] == [str(job.id)]

    async def requeued() -> bool:
        j = await rig.store.get_job(job.id)
        return j.status == JobStatus.QUEUED and j.attempt == 1

    await wait_until(requeued, timeout=5, message="the lease to be reaped")
    remote = await rig.remote()
    held = await remote.heartbeat("ghost", [Lease(job.id, got.jobs[0].lease_token)], 5)
    assert held == []  # the ghost learns it lost the job


async def test_a_remote_worker_reclaims_a_fetch_whose_answer_it_lost(rig: Rig) -> None:
    """Issue 19 #2 over gRPC: the jobs a lost Fetch claimed come back through Reclaim with a
    fresh lease token, so the server's hand-back of that Fetch (quoting the old one) cannot
    requeue them under the worker; jobs the worker holds are left alone."""
    lost, kept = (await rig.service.submit_many([NewJob(type="t.x"), NewJob(type="t.x")]))[:2]
    remote = await rig.remote()
    claimed = {j.id: j for j in await remote.claim("w-1", ["default"], 2, 30)}
    assert set(claimed) == {lost.job.id, kept.job.id}

    (got,) = await remote.reclaim("w-1", [kept.job.id], 30)

    assert (got.id, got.attempt) == (lost.job.id, 1)
    assert got.lease_token == claimed[lost.job.id].lease_token + 1
    await rig.server.gateway.hand_back([claimed[lost.job.id]])  # the late hand-back
    assert (await rig.store.get_job(got.id)).status == JobStatus.RUNNING
    assert await remote.reclaim("w-2", [], 30) == []
    with pytest.raises(InvalidInput) as err:
        await remote.reclaim("w-1", [kept.job.id], float("nan"))
    assert err.value.field == "lease_seconds"
