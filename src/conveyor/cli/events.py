"""`conveyor events`: read the lifecycle events topic from the command line, one CloudEvent
(JSON) per line. Without --follow it prints what the topic holds and stops at its end; with
--follow it starts at the end and prints events as they come, until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any

import click
import orjson

from conveyor.cli.common import run_async
from conveyor.config import Settings
from conveyor.transport import kafka
from conveyor.transport.events import matches


@click.command()
@click.option("--follow", "-f", is_flag=True, help="Start at the end and wait for new events.")
@click.option("--queue", default=None, help="Only events of jobs in this queue.")
@click.option(
    "--type", "event_type", default=None, help="Only this type: `completed` or its full name."
)
def events(follow: bool, queue: str | None, event_type: str | None) -> None:
    """Tail the lifecycle events topic (<prefix>.events; CONVEYOR_KAFKA_BOOTSTRAP and the
    CONVEYOR_KAFKA_* TLS/SASL settings reach the broker)."""
    settings = Settings()
    if not settings.kafka_bootstrap:
        raise click.ClickException("set CONVEYOR_KAFKA_BOOTSTRAP to the Kafka bootstrap servers")
    run_async(_tail(settings, follow=follow, queue=queue, event_type=event_type))


async def _tail(
    settings: Settings, *, follow: bool, queue: str | None, event_type: str | None
) -> None:
    from aiokafka import AIOKafkaConsumer

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    topic = kafka.topic(settings, kafka.EVENTS)
    # No consumer group: a tail reads every partition and commits nothing.
    consumer = AIOKafkaConsumer(
        **kafka.client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest" if follow else "earliest",
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        consumer.assign(partitions)
        if follow:
            await consumer.seek_to_end(*partitions)
            ends = None
        else:
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
        while not stopping.is_set():
            if ends is not None and all(
                await asyncio.gather(*(_at(consumer, tp, end) for tp, end in ends.items()))
            ):
                return
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    if matches(event, queue=queue, type=event_type):
                        sys.stdout.buffer.write(orjson.dumps(event) + b"\n")
            sys.stdout.flush()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> list[Any]:
    from aiokafka import TopicPartition

    await consumer.topics()  # fetches the cluster's metadata
    ids = consumer.partitions_for_topic(topic)
    if not ids:
        raise click.ClickException(f"topic {topic} does not exist (yet): no events published")
    return [TopicPartition(topic, p) for p in sorted(ids)]


async def _at(consumer: Any, tp: Any, end: int) -> bool:
    return bool(await consumer.position(tp) >= end)
