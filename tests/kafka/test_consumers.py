"""What another service sees: the README's consumer example, run as written against the test
broker, and `conveyor events`."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from pathlib import Path

import orjson

from conveyor.config import Settings
from conveyor.domain.records import Completion
from conveyor.store import Store, open_store
from conveyor.transport.relay import relaying
from tests.helpers import enqueue, make_job, wait_until
from tests.kafka.broker import Tansu

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- example: events-consumer -->\n(?:<!--.*?-->\n)?```python\n(.*?)```", text, re.DOTALL
    )
    assert found, "README.md lost its events consumer example"
    return found.group(1)


async def publishing_store(url: str) -> Store:
    store = open_store(url, publish_events=True)
    await store.connect()
    await store.migrate()
    return store


async def finish(store: Store, queue: str, result: object) -> uuid.UUID:
    (job,) = await enqueue(store, make_job(queue=queue))
    (claimed,) = await store.claim("w1", [queue], 1, 30.0)
    assert await store.complete_many([Completion(claimed.id, claimed.lease_token, result)])
    return job.id


async def read_line(proc: asyncio.subprocess.Process, timeout: float) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    assert line, f"the process ended (exit {await proc.wait()})"
    return line.decode().strip()


async def test_the_readme_consumer_example_sees_a_completed_job(
    sqlite_url: str, kafka: Tansu
) -> None:
    example = readme_example()
    assert len([line for line in example.splitlines() if line.strip()]) <= 10  # ten lines
    code = example.replace("localhost:9092", kafka.bootstrap)
    settings = Settings(store_url=sqlite_url, kafka_bootstrap=kafka.bootstrap, relay_interval=0.02)
    store = await publishing_store(sqlite_url)
    try:
        async with relaying(store, settings):
            job_id = await finish(store, "billing", {"total": 42})
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
            )
            try:
                assert await read_line(proc, timeout=25) == f"{job_id} {{'total': 42}}"
            finally:
                proc.kill()
                await proc.wait()
    finally:
        await store.close()


async def test_conveyor_events_prints_and_filters_events(sqlite_url: str, kafka: Tansu) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    settings = Settings(
        store_url=sqlite_url,
        kafka_bootstrap=kafka.bootstrap,
        kafka_topic_prefix=prefix,
        relay_interval=0.02,
    )
    env = {
        **os.environ,
        "CONVEYOR_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "CONVEYOR_KAFKA_TOPIC_PREFIX": prefix,
    }
    store = await publishing_store(sqlite_url)
    try:
        async with relaying(store, settings) as relay:
            assert relay is not None
            done = await finish(store, "a", 1)
            await finish(store, "b", 2)
            await wait_until(lambda: relay.published == 6, timeout=10, message="6 events")

            # Both at once (each start-up costs seconds): without --follow, what the topic
            # holds, filtered, then exit; with --follow, from the end, what comes next.
            listing, tail = await asyncio.gather(
                asyncio.create_subprocess_exec(
                    sys.executable, "-m", "conveyor.cli", "events", "--queue", "a",
                    "--type", "completed", stdout=asyncio.subprocess.PIPE, env=env,
                ),
                asyncio.create_subprocess_exec(
                    sys.executable, "-m", "conveyor.cli", "events", "--follow", "--queue", "c",
                    "--type", "conveyor.job.created", stdout=asyncio.subprocess.PIPE, env=env,
                ),
            )  # fmt: skip
            try:
                out, _ = await asyncio.wait_for(listing.communicate(), 20)
                assert listing.returncode == 0
                lines = [orjson.loads(line) for line in out.splitlines()]
                assert [(e["subject"], e["type"]) for e in lines] == [
                    (str(done), "conveyor.job.completed")
                ]

                async def submit_until_seen() -> str:
                    # The tail may still be finding the end when the first job is published:
                    # keep submitting until one shows up.
                    while True:
                        await enqueue(store, make_job(queue="c"))
                        try:
                            return await read_line(tail, timeout=1)
                        except TimeoutError:
                            continue

                event = orjson.loads(await asyncio.wait_for(submit_until_seen(), 20))
                # (Where a tail starts is the broker's answer to "latest": Tansu's memory storage
                # was seen to answer an older offset under load, so that is not asserted.)
                assert (event["type"], event["data"]["queue"]) == ("conveyor.job.created", "c")
            finally:
                for proc in (listing, tail):
                    if proc.returncode is None:
                        proc.kill()
                    await proc.wait()
    finally:
        await store.close()
