"""The Kafka client's options and Conveyor's topic names, each decided once.

aiokafka is imported here and in the relay only, so a deployment without Kafka never loads it
(it is the optional `kafka` extra).
"""

from __future__ import annotations

import contextlib
import ssl
import zlib
from collections.abc import Iterable
from typing import Any

from conveyor.config import Settings

EVENTS = "events"  # every lifecycle transition of every job
DEAD = "dead"  # every job that ends dead, as its `dead` event


def topic(settings: Settings, name: str) -> str:
    """`<prefix>.<name>`, e.g. conveyor.events."""
    return f"{settings.kafka_topic_prefix}.{name}"


def partition_of(key: bytes, all_partitions: list[int], available: list[int]) -> int:
    """A key's partition (aiokafka's partitioner signature): CRC-32, computed in C. The
    client's default (the Java client's murmur2, in pure Python) was a tenth of the relay's
    time; nothing else produces to Conveyor's topics, so only consistency matters: one job,
    one partition, while the partition count stays."""
    return all_partitions[zlib.crc32(key) % len(all_partitions)]


def client_options(settings: Settings) -> dict[str, Any]:
    """What every client (producer, consumer, admin) is built with: the bootstrap servers and
    the TLS/SASL settings passed through."""
    if not settings.kafka_bootstrap:
        raise ValueError("no Kafka bootstrap configured (CONVEYOR_KAFKA_BOOTSTRAP)")
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap.split(","),
        "security_protocol": settings.kafka_security_protocol,
        "request_timeout_ms": int(settings.kafka_request_timeout * 1000),
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if settings.kafka_sasl_mechanism is not None:
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=None if password is None else password.get_secret_value(),
        )
    return options


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Server verified against the CA file (the system's when unset); a client certificate
    when one is configured."""
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
    return context


async def ensure_topics(settings: Settings, names: Iterable[str]) -> None:
    """Create the topics that do not exist yet (partitions and replication from settings).
    Racing another creator is fine: a topic that exists is what was wanted."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.kafka_partitions, settings.kafka_replication)
            for name in dict.fromkeys(names)
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()
