"""Tenant confinement is a service rule: a confined caller cannot tell another tenant's job
from a missing one, and its submits always carry its tenant."""

from __future__ import annotations

import uuid

import pytest

from conveyor.domain.errors import JobNotFound
from conveyor.domain.job import NewJob
from conveyor.domain.records import JobFilter
from conveyor.service.jobs import JobService
from conveyor.store import Store


async def test_confined_submit_get_list_cancel(store: Store) -> None:
    svc = JobService(store)
    mine = (await svc.submit(NewJob(type="t", tenant="evil"), tenant="acme")).job
    assert mine.tenant == "acme"  # the caller's tenant wins over what it asked for
    theirs = (await svc.submit(NewJob(type="t"), tenant="globex")).job

    assert (await svc.get(mine.id, tenant="acme")).id == mine.id
    with pytest.raises(JobNotFound) as other:
        await svc.get(theirs.id, tenant="acme")
    missing_id = uuid.uuid4()
    with pytest.raises(JobNotFound) as missing:
        await svc.get(missing_id, tenant="acme")
    assert other.value.message == missing.value.message.replace(str(missing_id), str(theirs.id))

    for call in (svc.events, svc.cancel, svc.retry):
        with pytest.raises(JobNotFound):
            await call(theirs.id, tenant="acme")  # type: ignore[operator]
    assert not (await svc.get(theirs.id)).status.terminal  # the cancel did nothing

    page = await svc.list_jobs(JobFilter(tenant="globex"), tenant="acme")
    assert [j.id for j in page.jobs] == [mine.id]
    everything = await svc.list_jobs(JobFilter())
    assert {j.id for j in everything.jobs} == {mine.id, theirs.id}


async def test_unique_keys_do_not_cross_tenants(store: Store) -> None:
    svc = JobService(store)
    a = await svc.submit(NewJob(type="t", unique_key="invoice-1"), tenant="acme")
    b = await svc.submit(NewJob(type="t", unique_key="invoice-1"), tenant="globex")
    assert a.created and b.created and a.job.id != b.job.id
    again = await svc.submit(NewJob(type="t", unique_key="invoice-1"), tenant="acme")
    assert not again.created and again.job.id == a.job.id


async def test_confined_batch_carries_the_tenant(store: Store) -> None:
    svc = JobService(store)
    results = await svc.submit_many(
        [NewJob(type="t"), NewJob(type="t", tenant="other")], tenant="acme"
    )
    assert [r.job.tenant for r in results] == ["acme", "acme"]
