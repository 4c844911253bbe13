"""deploy/nginx, live: Debian's nginx in front of two real servers (see conftest). Submits,
long-polls and gRPC go through it; request ids are shared with Conveyor's logs; /metrics stays
inside; the API's refusals pass untouched; load spreads over both servers; a killed server
costs no request once the gateway has noticed; TLS serves HTTP and gRPC on one port."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import time
import uuid
from typing import Any

import grpc
import httpx
import pytest
from grpc import aio

from conveyor.grpc.gen.conveyor.v1 import jobs_pb2 as pb
from conveyor.grpc.gen.conveyor.v1 import jobs_pb2_grpc
from tests.helpers import wait_until

pytestmark = pytest.mark.postgres
S = pb.JobStatus


def client(cluster: Any, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=kw.pop("base_url", cluster.url),
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=kw.pop("timeout", 20),
        **kw,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def server_lines_with(cluster: Any, request_id: str) -> dict[str, int]:
    """How many log lines of each server carry `request_id`."""
    return {
        name: sum(1 for r in json_lines(cluster.log(name)) if r.get("request_id") == request_id)
        for name in ("server-1", "server-2")
    }


async def test_submit_and_long_poll_through_the_gateway(cluster: Any) -> None:
    async with client(cluster) as http:
        resp = await http.post("/v1/jobs", json={"type": "demo.echo", "payload": {"n": 1}})
        assert resp.status_code == 201, resp.text
        job = resp.json()
        done = await http.get(f"/v1/jobs/{job['id']}", params={"wait": 10})
        assert done.status_code == 200, done.text
        assert done.json()["status"] == "completed"
        assert done.json()["result"] == {"echo": {"n": 1}}

        # No worker serves this queue: the long-poll holds the connection for its whole wait
        # and then answers with the job as it is.
        idle = await http.post("/v1/jobs", json={"type": "demo.echo", "queue": "nobody"})
        t0 = time.monotonic()
        waited = await http.get(f"/v1/jobs/{idle.json()['id']}", params={"wait": 2})
        assert waited.status_code == 200 and waited.json()["status"] == "queued"
        assert time.monotonic() - t0 >= 1.9


async def test_request_ids_reach_conveyors_logs(cluster: Any) -> None:
    given = f"caller-{uuid.uuid4().hex[:8]}"
    async with client(cluster) as http:
        resp = await http.get("/v1/jobs", params={"limit": 1}, headers={"X-Request-ID": given})
        assert resp.headers["x-request-id"] == given
        made = (await http.get("/v1/jobs", params={"limit": 1})).headers["x-request-id"]
        unsafe = await http.get("/healthz", headers={"X-Request-ID": "no spaces allowed"})
    assert len(made) == 32 and made != given
    assert unsafe.headers["x-request-id"] not in ("no spaces allowed", "")
    for rid in (given, made, unsafe.headers["x-request-id"]):
        # The same id in the gateway's access log and in one server's log line for it.
        await wait_until(
            lambda rid=rid: sum(server_lines_with(cluster, rid).values()) == 1,
            message=f"a server log line with request_id {rid}",
        )
        await wait_until(
            lambda rid=rid: any(
                r.get("request_id") == rid for r in json_lines(cluster.log("nginx"))
            ),
            message=f"the gateway's access line for {rid}",
        )


async def test_grpc_submit_and_watch_through_the_gateway(cluster: Any) -> None:
    meta = (("authorization", f"Bearer {cluster.token}"),)
    async with aio.insecure_channel(cluster.grpc_target) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        submitted = await stub.SubmitJob(
            pb.SubmitJobRequest(job=pb.JobSpec(type="demo.echo", payload_json=b'{"via":"grpc"}')),
            metadata=meta,
            timeout=20,
        )
        seen = [
            u.status
            async for u in stub.WatchJob(
                pb.WatchJobRequest(id=submitted.job.id), metadata=meta, timeout=20
            )
        ]
    assert seen[-1] == S.JOB_STATUS_COMPLETED, seen
    async with client(cluster) as http:
        job = (await http.get(f"/v1/jobs/{submitted.job.id}")).json()
    assert job["result"] == {"echo": {"via": "grpc"}}


async def test_metrics_stay_inside(cluster: Any) -> None:
    async with client(cluster) as http:
        assert (await http.get("/metrics")).status_code == 404
        inside = await http.get(f"{cluster.server_url(0)}/metrics")
    assert inside.status_code == 200 and "conveyor_http_requests" in inside.text


async def test_the_apis_refusals_pass_through_untouched(cluster: Any) -> None:
    async with client(cluster) as http:
        limited = await http.patch("/v1/queues/full", json={"max_depth": 1})
        assert limited.status_code == 200, limited.text
        first = await http.post("/v1/jobs", json={"type": "t", "queue": "full"})
        assert first.status_code == 201, first.text  # no worker takes queue "full"
        bodies = []
        for base in (cluster.url, cluster.server_url(0)):  # the gateway, then a server directly
            refused = await http.post(f"{base}/v1/jobs", json={"type": "t", "queue": "full"})
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "queue_full"
            bodies.append(refused.content)
        assert bodies[0] == bodies[1]  # byte for byte: nginx adds nothing, changes nothing
        bad = await http.post("/v1/jobs", json={"type": "t", "priority": "high"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["field"] == "priority"
        # Over the body limit, nginx refuses it itself, in the API's own format.
        big = await http.post(
            "/v1/jobs",
            content=b"x" * (1024 * 1024 + 1),
            headers={"content-type": "application/json"},
        )
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"
        assert big.json()["code"] == "payload_too_large"


async def test_requests_spread_over_both_servers(cluster: Any) -> None:
    ids = [f"spread-{uuid.uuid4().hex[:10]}" for _ in range(40)]
    async with client(cluster) as http:
        # Concurrent, so least-connections has a choice to make.
        answers = await asyncio.gather(
            *(http.get("/v1/jobs", params={"limit": 1}, headers={"X-Request-ID": i}) for i in ids)
        )
    assert all(a.status_code == 200 for a in answers)

    def served() -> dict[str, int] | None:
        per = {"server-1": 0, "server-2": 0}
        for i in ids:
            for name, n in server_lines_with(cluster, i).items():
                per[name] += n
        return per if sum(per.values()) == len(ids) else None

    per = await wait_until(served, message="every request in one server's log")
    assert per["server-1"] >= 5 and per["server-2"] >= 5, per


async def test_tls_serves_http_and_grpc_on_one_port(cluster: Any) -> None:
    cert, _ = cluster.tls
    context = ssl.create_default_context(cafile=str(cert))
    https = f"https://127.0.0.1:{cluster.https_port}"
    async with client(cluster, base_url=https, verify=context) as http:
        resp = await http.post("/v1/jobs", json={"type": "demo.echo"})
        assert resp.status_code == 201, resp.text
        assert resp.headers["strict-transport-security"].startswith("max-age=")
        assert (await http.get("/metrics")).status_code == 404
    creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    async with aio.secure_channel(f"127.0.0.1:{cluster.https_port}", creds) as channel:
        job = await jobs_pb2_grpc.JobServiceStub(channel).GetJob(
            pb.GetJobRequest(id=resp.json()["id"]),
            metadata=(("authorization", f"Bearer {cluster.token}"),),
            timeout=20,
        )
    assert job.id == resp.json()["id"]


async def test_a_killed_server_loses_no_request(cluster: Any) -> None:
    """Last in the module: it kills server-1 (and starts it again at the end)."""
    victim = cluster.procs["server-1"]
    victim.send_signal(signal.SIGKILL)
    assert await asyncio.to_thread(victim.wait, 10) == -signal.SIGKILL
    try:
        async with client(cluster) as http:
            answers = await asyncio.gather(
                *(
                    http.post("/v1/jobs", json={"type": "demo.echo", "payload": {"i": i}})
                    for i in range(30)
                )
            )
            assert [a.status_code for a in answers] == [201] * 30, [a.text for a in answers]
            done = await asyncio.gather(
                *(http.get(f"/v1/jobs/{a.json()['id']}", params={"wait": 15}) for a in answers)
            )
            assert [d.json()["status"] for d in done] == ["completed"] * 30
        meta = (("authorization", f"Bearer {cluster.token}"),)
        async with aio.insecure_channel(cluster.grpc_target) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            for _ in range(5):
                reply = await stub.SubmitJob(
                    pb.SubmitJobRequest(job=pb.JobSpec(type="demo.echo")),
                    metadata=meta,
                    timeout=20,
                )
                assert reply.job.id
    finally:
        cluster.spawn_server(0)
        await asyncio.to_thread(cluster.wait_ready)
