"""Several API processes behind one port (uvicorn --workers 2) with PROMETHEUS_MULTIPROC_DIR:
whichever process answers the scrape reports the requests and jobs of all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import wait_until
from tests.observability.stack import REPO, base_env, free_port, migrate

N = 40


def enqueued(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("conveyor_jobs_enqueued_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def start_api(tmp_path: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "conveyor.api:create_app", "--factory"),
            *("--workers", "2", "--host", "127.0.0.1", "--port", str(port)),
            *("--log-level", "warning"),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "server.log").open("wb"),
    )


async def test_counters_add_up_across_processes(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path}/conveyor.db"
    migrate(store_url)
    mp = tmp_path / "prom-mp"
    mp.mkdir()
    port = free_port()
    env = base_env(store_url, {"PROMETHEUS_MULTIPROC_DIR": str(mp)})
    server = start_api(tmp_path, env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_until(up, timeout=30, interval=0.1, message="the API processes")
            for _ in range(N):
                # a fresh connection each time, so the kernel spreads them over both processes
                async with httpx.AsyncClient(base_url=base, timeout=5) as one:
                    resp = await one.post("/v1/jobs", json={"type": "mp.job"})
                    assert resp.status_code == 201, resp.text
            pids = {p.name.rsplit("_", 1)[-1] for p in mp.glob("counter_*.db")}
            assert len(pids) == 2, f"both processes should have counted requests: {pids}"
            for _ in range(6):  # any process may answer; each must report all 40
                async with httpx.AsyncClient(base_url=base, timeout=5) as one:
                    text = (await one.get("/metrics")).text
                assert enqueued(text) == N
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    assert os.listdir(mp)  # the per-process value files the collector read
