"""Concurrent dispatches share Redis round trips.

Each submit dispatches its job after its commit. Sent one call each, concurrent submits would
each take a connection of their own from the pool (connections that the pool opens under load,
each with its handshake) and pay a round trip each. Here one flusher sends at a time: members
that arrive while a call is in flight wait for it and go together, one script call per queue,
in the next one. A lone dispatch is sent at once. Each caller learns whether the call that
carried its members succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Send = Callable[[str, list[str]], Awaitable[object]]  # (queue, members)


class DispatchBatcher:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[str, list[str]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def add(self, by_queue: dict[str, list[str]]) -> None:
        """Send these members (queue -> members); raises what the carrying call raised."""
        for queue, members in by_queue.items():
            self._pending.setdefault(queue, []).extend(members)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="conveyor-dispatch")
        await done

    async def _flush(self) -> None:
        while self._waiters:
            batch, waiters = self._pending, self._waiters
            self._pending, self._waiters = {}, []
            try:
                for queue, members in batch.items():
                    await self._send(queue, members)
            except Exception as exc:
                for w in waiters:
                    if not w.done():
                        w.set_exception(exc)
            else:
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
