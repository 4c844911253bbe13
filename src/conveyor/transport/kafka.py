"""The Kafka client's options and Conveyor's topic names, each decided once.

aiokafka is imported here, in the relay and by the Kafka transport's worker side only, so a
deployment without Kafka never loads it (it is the optional `kafka` extra).
"""

from __future__ import annotations

import re
import ssl
import zlib
from collections.abc import Iterable
from typing import Any

from conveyor.config import Settings

EVENTS = "events"  # every lifecycle transition of every job
DEAD = "dead"  # every job that ends dead, as its `dead` event


# The Kafka transport's priority bands, most urgent first: a job's priority picks its band's
# topic, and a worker takes from a higher band's partitions before a lower one's. Within a band
# jobs arrive in dispatch order (Kafka keeps no priority); the store's claim order still holds
# among the ids a worker takes at once.
HIGH, NORMAL, LOW = "high", "normal", "low"
BANDS = (HIGH, NORMAL, LOW)
_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


def topic(settings: Settings, name: str) -> str:
    """`<prefix>.<name>`, e.g. conveyor.events."""
    return f"{settings.kafka_topic_prefix}.{name}"


def band_of(priority: int) -> str:
    """Priority above 0: high; 0 (the default): normal; below 0: low."""
    return HIGH if priority > 0 else LOW if priority < 0 else NORMAL


def jobs_topic(prefix: str, queue: str, band: str = NORMAL) -> str:
    """A queue's dispatch topic for a band: `<prefix>.jobs.<queue>` for the normal band,
    `<prefix>.jobs-high.<queue>` and `<prefix>.jobs-low.<queue>` for the others (the band
    before the queue). A queue name with a character Kafka refuses in topic names (`:`), or a
    dot (Kafka refuses two topics whose names differ only by `.` against `_`, so `a.b` and
    `a_b` could not both exist), has it replaced by `-` and its CRC-32 appended, so two queue
    names never share a topic and the broker never refuses one."""
    name = queue
    if not _TOPIC_SAFE.fullmatch(queue):
        name = f"{re.sub(r'[^A-Za-z0-9_-]', '-', queue)}.{zlib.crc32(queue.encode()):08x}"
    kind = "jobs" if band == NORMAL else f"jobs-{band}"
    return f"{prefix}.{kind}.{name}"


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


async def ensure_topics(settings: Settings, names: Iterable[str]) -> dict[str, str]:
    """Create the topics that do not exist yet (partitions and replication from settings);
    the ones the broker refused, with its reason (a name it rejects, ACLs, a creation policy).
    Racing another creator is fine: a topic that exists is what was wanted. The client does
    not raise for a refused topic; the answer carries an error code per topic."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError, for_code

    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.kafka_partitions, settings.kafka_replication)
            for name in dict.fromkeys(names)
            if name not in existing
        ]
        if not missing:
            return {}
        response = await admin.create_topics(missing)
        return {
            topic: f"{for_code(code).__name__}: {rest[0] if rest else ''}".rstrip(": ")
            for topic, code, *rest in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        }
    finally:
        await admin.close()
