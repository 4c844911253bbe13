"""Concurrent dispatches share Redis round trips.

Each submit dispatches its job after its commit. Sent one call each, concurrent submits would
each take a connection of their own from the pool (connections that the pool opens under load,
each with its handshake) and pay a round trip each. Here one flusher sends at a time: members
that arrive while a call is in flight wait for it and go together, one script call per queue,
in the next one. A lone dispatch is sent at once, by its caller (no task, no hand-off: this is
the enqueue-to-start path); what arrives meanwhile goes in a flusher task's next call. Each
caller learns whether the call that carried its members succeeded.
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
        self._busy = False  # a call is in flight (a caller's own, or the flusher's)
        self._flusher: asyncio.Task[None] | None = None

    async def add(self, by_queue: dict[str, list[str]]) -> None:
        """Send these members (queue -> members); raises what the carrying call raised."""
        if not self._busy:
            self._busy = True
            try:
                for queue, members in by_queue.items():
                    await self._send(queue, members)
            finally:
                self._hand_off()
            return
        for queue, members in by_queue.items():
            self._pending.setdefault(queue, []).extend(members)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        await done

    def _hand_off(self) -> None:
        """The call in flight is over: what queued up meanwhile goes in the flusher's."""
        if self._waiters:
            self._flusher = asyncio.create_task(self._flush(), name="conveyor-dispatch")
        else:
            self._busy = False

    async def _flush(self) -> None:
        try:
            await self._flush_all()
        finally:
            self._busy = False  # also if cancelled: later callers then send themselves

    async def _flush_all(self) -> None:
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
