from __future__ import annotations

import pytest

from conveyor.domain.records import Completion
from conveyor.service.jobs import JobService
from conveyor.store import Store
from tests.helpers import claim_exactly, dead_job, enqueue, make_job

PAYLOAD = {
    "text": "Grüße, 世界 — ✓ 🚀",
    "escapes": 'quote " backslash \\ newline \n tab \t',
    "int": 2**53,
    "neg": -7,
    "float": 3.25,
    "bool": [True, False],
    "none": None,
    "empty": {"list": [], "dict": {}, "str": ""},
    "nested": {"a": [{"b": [1, 2, {"c": None}]}]},
}


async def test_payload_round_trip(store: Store) -> None:
    (job,) = await enqueue(store, make_job(payload=PAYLOAD))
    assert job.payload == PAYLOAD
    assert (await store.get_job(job.id)).payload == PAYLOAD
    (claimed,) = await claim_exactly(store, 1)
    assert claimed.payload == PAYLOAD


@pytest.mark.parametrize(
    "result",
    [None, PAYLOAD, [1, "two", {"three": 3.0}], "plain string", 42, True],
    ids=["null", "object", "list", "string", "number", "bool"],
)
async def test_result_round_trip(store: Store, result) -> None:
    await enqueue(store, make_job())
    (job,) = await claim_exactly(store, 1)
    assert await store.complete_many([Completion(job.id, job.lease_token, result)]) == [job.id]
    assert (await store.get_job(job.id)).result == result


ANY_JSON = [None, "user@example.com", "", 0, -1.5, 2**53, True, False, [], [1, "two", None], {}]
ANY_JSON_IDS = ["null", "string", "empty-string", "zero", "float", "big-int", "true", "false",
                "empty-list", "list", "empty-object"]  # fmt: skip


@pytest.mark.parametrize("payload", ANY_JSON, ids=ANY_JSON_IDS)
async def test_any_json_payload_round_trips_alone_and_in_a_batch(store: Store, payload) -> None:
    """A payload is any JSON value (issue 17), whether the service encoded it (payload_json)
    or the store does; the lone submit and the batch take different statements."""
    service = JobService(store)
    alone = service.validate(make_job(payload=payload))
    batch = [service.validate(make_job(payload=payload)), make_job(payload=payload)]
    jobs = await enqueue(store, alone) + await enqueue(store, *batch)
    for job in jobs:
        assert job.payload == payload
        assert (await store.get_job(job.id)).payload == payload
    claimed = await claim_exactly(store, 3)
    assert [j.payload for j in claimed] == [payload] * 3


@pytest.mark.parametrize("payload", ["edited", [1, 2], 7], ids=["string", "list", "number"])
async def test_dead_job_requeues_with_any_json_payload(store: Store, payload) -> None:
    dead = await dead_job(store, payload={"x": 1})
    requeued = await store.requeue_dead(dead.id, payload)
    assert requeued.payload == payload
    assert (await store.get_job(dead.id)).payload == payload
