"""How a ready job reaches a worker (see `base`): the store itself (default) or Redis."""

from __future__ import annotations

from conveyor.config import Settings
from conveyor.transport.base import StoreTransport, Transport


def open_transport(settings: Settings) -> Transport:
    """The transport `settings.transport` names. Connections open on first use."""
    if settings.transport == "redis":
        from conveyor.transport.redis.transport import RedisTransport

        return RedisTransport(settings)
    return StoreTransport()


__all__ = ["StoreTransport", "Transport", "open_transport"]
