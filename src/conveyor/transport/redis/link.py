"""One process's connection to the Redis of the transport: the client, the scripts, and
whether Redis is worth asking right now.

Redis is an accelerator here, never the truth, so a failed call is not an error for the caller:
the link notes the failure and for a short while (backing off from 0.25 s to 5 s while it keeps
failing) says Redis is unavailable, during which submits skip the dispatch and workers claim
from the store; the store's sweep puts back whatever Redis missed once it answers again. That
way an outage costs one failed call per back-off period, not one timeout per submit.
"""

from __future__ import annotations

import time
from importlib.resources import files

import redis.asyncio as aioredis
import structlog
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from conveyor import metrics

log = structlog.get_logger("conveyor.transport")

MIN_BACKOFF = 0.25
MAX_BACKOFF = 5.0
CONNECT_TIMEOUT = 1.0
# A call that a submit waits for (the dispatch) gives up after this long.
CALL_TIMEOUT = 2.0


def _script(client: aioredis.Redis, name: str) -> AsyncScript:
    """A script of this package (`<name>.lua`), registered once: it runs by its SHA (EVALSHA)
    and is loaded again by redis-py if the server lost it (a restart)."""
    source = files(__package__).joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return client.register_script(source)


class RedisLink:
    def __init__(self, url: str) -> None:
        # No socket_timeout: with one, redis-py wraps every send in asyncio.wait_for, which on
        # Python 3.11 can swallow a cancellation arriving as the send completes (the likely
        # cause of a worker that once did not stop, mid-sweep, in the e2e tests). A dead
        # Redis resets the connection or refuses it (CONNECT_TIMEOUT); calls a submit waits
        # for are bounded by CALL_TIMEOUT (asyncio.timeout); a worker stuck on a hung Redis
        # fails its liveness probe.
        self.client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_keepalive=True,
            health_check_interval=0,
        )
        # Submits' dispatches, sent one call at a time (DispatchBatcher): on a connection of
        # their own rather than the pool's, whose checkout and return (a readiness probe of
        # the socket, connection-count bookkeeping) cost about as much client time as the
        # round trip itself, on the enqueue-to-start path.
        self.dispatcher = aioredis.Redis(
            connection_pool=self.client.connection_pool, single_connection_client=True
        )
        self.take = _script(self.client, "take")
        self.ack = _script(self.client, "ack")
        self.dispatch = _script(self.client, "dispatch")
        self.recover = _script(self.client, "recover")
        self._retry_at = 0.0
        self._backoff = 0.0
        self.last_error: str | None = None
        self._up = metrics.TRANSPORT_UP.labels("redis")
        self._up.set(1)

    def available(self) -> bool:
        """False while backing off after a failure."""
        return self._backoff == 0.0 or time.monotonic() >= self._retry_at

    def ok(self) -> None:
        if self._backoff:
            log.info("redis answers again; dispatching through it")
            self._backoff = 0.0
            self.last_error = None
            self._up.set(1)

    def failed(self, exc: BaseException) -> None:
        first = self._backoff == 0.0
        self._backoff = min(MAX_BACKOFF, max(MIN_BACKOFF, self._backoff * 2))
        self._retry_at = time.monotonic() + self._backoff
        self.last_error = f"{type(exc).__name__}: {exc}"
        self._up.set(0)
        if first:
            log.warning(
                "redis unreachable; falling back to the store until it answers",
                error=self.last_error,
            )

    async def close(self) -> None:
        await self.dispatcher.aclose()  # gives its connection back to the pool first
        await self.client.aclose()


__all__ = ["RedisError", "RedisLink"]
