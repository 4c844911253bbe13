from __future__ import annotations

import pytest

from conveyor.domain.records import Completion
from conveyor.store import Store
from tests.helpers import claim_exactly, enqueue, make_job

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
