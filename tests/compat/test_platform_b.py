"""Platform B (Redis queue, PostgreSQL state): `POST /jobs` with the type inside the payload,
`GET /jobs/<id>` with B's status names, and B's metric names when asked for. Bodies verbatim
from issue 17."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from conveyor.api import create_app
from conveyor.domain.errors import ConfigError
from conveyor.domain.records import Role
from tests.compat.conftest import Stack, StackFactory, compat_settings, read_until
from tests.helpers import wait_until

JOB = {"payload": {"type": "demo", "value": 123}}
B_METRICS = (
    "jobs_processed_total",
    "job_processing_duration_seconds_bucket",
    "job_failures_total",
    "queue_depth",
)


async def _run(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.post("/jobs", json=JOB)
    assert resp.status_code == 201, resp.text
    job = resp.json()
    assert job["type"] == "demo" and job["payload"] == JOB["payload"]  # type stays in it
    assert job["status"] == "pending"

    async def read() -> dict[str, Any]:
        r = await client.get(f"/jobs/{job['id']}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    done = await read_until(read, "completed")
    assert done["result"] == {"processed": {"type": "demo", "value": 123}}
    return done


async def test_type_from_the_payload_runs_to_completion(stack: Stack) -> None:
    async with stack.http(stack.token(Role.USER, "acme")) as client:
        await _run(client)
        metrics = (await client.get("/metrics")).text
    # Aliases are off by default: Conveyor's names only.
    assert "conveyor_jobs_completed_total" in metrics
    assert not any(line.startswith(B_METRICS) for line in metrics.splitlines())


async def test_failed_then_dead_lettered_in_bs_words(stack: Stack) -> None:
    async with stack.http(stack.token()) as client:
        resp = await client.post(
            "/jobs", json={"payload": {"type": "demo.fail", "fatal": True}, "max_retries": 0}
        )
        assert resp.status_code == 201, resp.text

        async def read() -> dict[str, Any]:
            body: dict[str, Any] = (await client.get(f"/jobs/{resp.json()['id']}")).json()
            return body

        dead = await read_until(read, "dead-lettered")
    assert "refusing this payload" in dead["error"]


async def test_anonymous_submit_only_when_mapped(make_stack: StackFactory) -> None:
    off = await make_stack()
    async with off.http() as client:
        resp = await client.post("/jobs", json=JOB)
    assert resp.status_code == 401  # the default: no anonymous callers

    on = await make_stack(compat_anonymous="user:legacy")
    async with on.http() as client:
        done = await _run(client)
        v1 = await client.get(f"/v1/jobs/{done['id']}")
    assert v1.status_code == 401  # the mapping is for the compatibility routes only
    async with on.http(on.token()) as admin:
        assert (await admin.get(f"/v1/jobs/{done['id']}")).json()["tenant"] == "legacy"


async def test_metric_aliases_when_turned_on(make_stack: StackFactory) -> None:
    stack = await make_stack(compat_metric_aliases=True)
    async with stack.http(stack.token()) as client:
        await _run(client)

        async def exported() -> dict[str, float] | None:
            values = _samples((await client.get("/metrics")).text)
            return values if "queue_depth" in values else None  # after a stats refresh

        values = await wait_until(exported, timeout=10, message="queue_depth to be exported")
    for name in B_METRICS:
        assert name in values, name
    # Counters are process-wide (other tests count too): the alias reads what Conveyor's reads.
    labels = '{queue="default",type="demo"}'
    assert values[f"jobs_processed_total{labels}"] >= 1
    assert (
        values[f"jobs_processed_total{labels}"] == values[f"conveyor_jobs_completed_total{labels}"]
    )


def _samples(text: str) -> dict[str, float]:
    """Every sample by its name with labels, and the bare names seen."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
            out.setdefault(key.split("{")[0], float(value))
    return out


async def test_the_callers_rate_limit_applies(make_stack: StackFactory) -> None:
    stack = await make_stack(rate_limit_user="2/minute")
    async with stack.http(stack.token(Role.USER, "acme")) as client:
        answers = [(await client.post("/jobs", json=JOB)).status_code for _ in range(3)]
        limited = await client.get("/jobs/01890000-0000-7000-8000-000000000000")
    assert answers == [201, 201, 429]
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"


def test_the_anonymous_mapping_is_a_start_up_warning_or_a_refusal_to_start() -> None:
    with capture_logs() as logs:
        create_app(compat_settings("sqlite:///unused.db"))
    assert not [e for e in logs if e["log_level"] == "warning"]  # off by default
    with capture_logs() as logs:
        create_app(compat_settings("sqlite:///unused.db", compat_anonymous="user:legacy"))
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert (warning["role"], warning["tenant"]) == ("user", "legacy")
    with pytest.raises(ConfigError, match="needs a tenant"):
        create_app(compat_settings("sqlite:///unused.db", compat_anonymous="user"))
