"""Between the store and the outside: how a ready job reaches a worker (see `base`: the store
itself by default, Redis, or Kafka topics fed by the outbox relay), and how what happens in the
store reaches other services (the Kafka relay of the outbox, `relay` and `events`). The store
stays the truth: everything here can be lost and is dispatched or published again from it."""

from __future__ import annotations

from conveyor.config import Settings
from conveyor.transport.base import HeldIds, StoreTransport, Transport


def open_transport(settings: Settings) -> Transport:
    """The transport `settings.transport` names. Connections open on first use."""
    if settings.transport == "redis":
        from conveyor.transport.redis.transport import RedisTransport

        return RedisTransport(settings)
    if settings.transport == "kafka":
        from conveyor.transport.kafka_transport import KafkaTransport

        return KafkaTransport(settings)
    return StoreTransport()


__all__ = ["HeldIds", "StoreTransport", "Transport", "open_transport"]
