"""SQLite wake-ups across processes: a commit in one process ends a wait in another within
milliseconds, long before the wait's own timeout (the worker's poll interval).

Other processes are real ones (`python -c`), talking over stdout: "ready" once a waiter
listens, "<queue> <time.time()>" just before an enqueue, "woke <time.time()>" when a wait
returns. Every figure is a difference of time.time() stamps on this host; the deadline
(PROMPT) is far below the 30 s waits, and no step waits for another by sleeping."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import pytest_asyncio

import conveyor
from conveyor.store import Store, open_store
from conveyor.store import sqlite as sqlite_driver
from tests.helpers import enqueue, make_job

WAIT = 30.0  # every wait's timeout: a wait ending on it is a lost wake
PROMPT = 0.5  # a wake must end the wait within this of the commit's start
STEP = 60.0  # deadline of any one step (a child starting, a line arriving)

SRC = str(Path(conveyor.__file__).resolve().parents[1])

CHILD = """
import asyncio, sys, time
from conveyor.domain.job import NewJob
from conveyor.store import open_store

async def main(mode, url, queues):
    store = open_store(url)
    await store.connect()
    try:
        if mode == "wait":
            await store.claim("child", queues, 1, 30)  # nothing there; binds the wake socket
            print("ready", flush=True)
            await store.wait_for_jobs(queues, 30)
            print("woke", time.time(), flush=True)
        else:
            for q in queues:
                t = time.time()
                await store.enqueue_many([NewJob(type="wake.test", queue=q)])
                print(q, t, flush=True)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
"""


async def _child(mode: str, url: str, *queues: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        mode,
        url,
        *queues,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )


async def _line(proc: asyncio.subprocess.Process) -> list[str]:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), STEP)
    assert raw, f"child exited (code {await proc.wait()}) without a word"
    return raw.decode().split()


async def _finish(*procs: asyncio.subprocess.Process) -> None:
    for proc in procs:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), STEP)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, f"child failed with code {proc.returncode}"


async def _wait_and_stamp(store: Store, queues: Sequence[str]) -> float:
    await store.wait_for_jobs(queues, WAIT)
    return time.time()


def _sockets(url: str) -> list[str]:
    key = str(Path(url.removeprefix("sqlite:///")).resolve())
    directory = sqlite_driver._wake_dir(key)
    return sorted(n for n in os.listdir(directory) if n.endswith(".sock"))


@pytest_asyncio.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    s = open_store(sqlite_url)
    await s.connect()
    await s.migrate()
    try:
        yield s
    finally:
        await s.close()


async def test_a_commit_in_another_process_wakes_a_waiter(store: Store, sqlite_url: str) -> None:
    # A first claim (nothing there) makes this process hear the file's commits.
    assert await store.claim("w", ["mail"], 1, 30) == []
    waiter = asyncio.create_task(_wait_and_stamp(store, ["mail", "other"]))
    child = await _child("enqueue", sqlite_url, "mail")
    try:
        queue, sent = await _line(child)
        returned = await asyncio.wait_for(waiter, WAIT + 5)
    finally:
        await _finish(child)
    elapsed = returned - float(sent)
    assert queue == "mail"
    assert 0 <= elapsed < PROMPT, f"woke {elapsed:.3f}s after the other process's enqueue"
    # The job is there to claim.
    assert [j.queue for j in await store.claim("w", ["mail"], 10, 30)] == ["mail"]


async def test_one_commit_wakes_waiters_in_several_processes(store: Store, sqlite_url: str) -> None:
    children = [await _child("wait", sqlite_url, "mail") for _ in range(2)]
    try:
        for child in children:
            assert await _line(child) == ["ready"]
        # Two processes listen on the file, one socket each.
        assert len(_sockets(sqlite_url)) == 2
        # And a waiter in this process, on another store object (the in-process path).
        here = open_store(sqlite_url)
        await here.connect()
        try:
            assert await here.claim("w", ["mail"], 1, 30) == []
            # Listening since its claim: whether it waits yet or not, the enqueue reaches it.
            waiter = asyncio.create_task(_wait_and_stamp(here, ["mail"]))
            sent = time.time()
            await enqueue(store, make_job(queue="mail"))
            woke = [float((await _line(c))[1]) for c in children]
            woke.append(await asyncio.wait_for(waiter, WAIT + 5))
        finally:
            await here.close()
    finally:
        await _finish(*children)
    for t in woke:
        assert 0 <= t - sent < PROMPT, f"woke {t - sent:.3f}s after the enqueue: {woke}"
    # Closed stores leave no socket behind.
    assert _sockets(sqlite_url) == []


async def test_a_wake_for_other_queues_does_not_end_the_wait(store: Store, sqlite_url: str) -> None:
    assert await store.claim("w", ["mail"], 1, 30) == []
    waiter = asyncio.create_task(_wait_and_stamp(store, ["mail"]))
    child = await _child("enqueue", sqlite_url, "other", "mail")
    try:
        assert (await _line(child))[0] == "other"
        queue, sent = await _line(child)
        returned = await asyncio.wait_for(waiter, WAIT + 5)
    finally:
        await _finish(child)
    assert queue == "mail"
    elapsed = returned - float(sent)
    assert 0 <= elapsed < PROMPT, f"woke {elapsed:.3f}s after the enqueue into 'mail'"


async def test_a_wake_between_claim_and_wait_is_not_slept_through(
    store: Store, sqlite_url: str
) -> None:
    other = open_store(sqlite_url)
    await other.connect()
    try:
        assert await store.claim("w", ["mail"], 1, 30) == []
        # Jobs land after the claim looked and before the worker waits.
        await enqueue(other, make_job(queue="mail"))
        started = time.monotonic()
        await store.wait_for_jobs(["mail"], WAIT)
        assert time.monotonic() - started < PROMPT
        # A claim answers what was latched before it: the next wait is a real one.
        assert len(await store.claim("w", ["mail"], 10, 30)) == 1
        started = time.monotonic()
        await store.wait_for_jobs(["mail"], 0.3)
        assert time.monotonic() - started >= 0.25
    finally:
        await other.close()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="needs AF_UNIX sockets")
async def test_the_socket_of_a_dead_process_is_removed(store: Store, sqlite_url: str) -> None:
    assert await store.claim("w", ["mail"], 1, 30) == []  # creates the wake directory
    (own,) = _sockets(sqlite_url)
    directory = sqlite_driver._wake_dir(str(Path(sqlite_url.removeprefix("sqlite:///")).resolve()))
    # A process that died without closing its store leaves its bound socket's file behind.
    dead = os.path.join(directory, "1-deadbeef.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(dead)
    sock.close()
    assert _sockets(sqlite_url) == sorted([own, "1-deadbeef.sock"])
    await enqueue(store, make_job(queue="mail"))
    assert _sockets(sqlite_url) == [own]
