"""The Redis transport, worker side: a store whose `claim` takes ids from Redis.

`claim` moves up to `limit` members from the worker's queues' ready sets into their
processing sets (one script call per queue, queues taken in turn so none starves), then claims
exactly those jobs in the store in one statement (`Store.claim_ids`: fencing tokens, pause
and concurrency limits as in `claim`). An id the store refuses is simply dropped. Once the
claim has committed the members are acknowledged (dropped from processing): by the next take
from that queue, which carries them (one Redis call per claim, not two), or with the worker's
wait. If the worker dies before that, the members stay in processing until their deadline
and the sweep puts them back; the store then refuses the ones it had claimed.
`wait_for_jobs` blocks on the queues' wake lists (BLPOP) instead of polling.

Round trips, for a worker on one queue (the usual case): idle, the acknowledgement, the BLPOP
and the next take go in one pipeline, so Redis runs the take the moment it wakes the worker
and the claim follows with no Redis round trip in between; busy (a claim filled its limit),
the next batch is taken while the store claims this one, so a claim costs the larger of the
two round trips rather than their sum. Either way the worker holds at most one batch that it
has taken and not claimed; a clean stop gives it back (`deregister_worker`), a crash leaves
it to the deadline.

Fallbacks, so that a job never waits on Redis alone: while Redis does not answer, `claim`
and `wait_for_jobs` are the store's own; and after a wait that ended without a wake-up (one
poll interval of silence), the next empty take also asks the store, once. That keeps a
Redis-transport worker running jobs that nobody dispatched: submitted by a process on the
store transport, or while Redis was down and before a sweep. Every other method is the
store's (`__getattr__`), so this object is a Store to whoever holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from conveyor.domain.job import Job
from conveyor.store.base import Store
from conveyor.transport.base import StoreOverlay
from conveyor.transport.redis.keys import QueueKeys, member_id
from conveyor.transport.redis.link import RedisError, RedisLink


class RedisWorkerStore(StoreOverlay):
    def __init__(
        self, store: Store, link: RedisLink, keys: Callable[[str], QueueKeys], deadline_ms: int
    ) -> None:
        """`keys`: a queue's keys; `deadline_ms`: how long a taken id may wait for its
        acknowledged claim before the sweep puts it back."""
        super().__init__(store)
        self._link = link
        self._keys = keys
        self._deadline_ms = deadline_ms
        self._poll_store = True  # the first claim looks in the store too
        self._turn = 0
        self._unacked: dict[str, list[bytes]] = {}  # per queue: claimed, not acknowledged
        # One-queue workers: the take that rode on the last wait (see `_wait_wake`), for the
        # next claim; its size is what the last claim left free.
        self._prefetched: tuple[str, list[bytes]] | None = None
        self._room = 1
        # One-queue workers, busy: the next take, sent while the store claims this batch.
        self._ahead: asyncio.Future[list[tuple[str, list[bytes]]]] | None = None

    async def claim(
        self, worker_id: str, queues: Sequence[str], limit: int, lease_seconds: float
    ) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        link = self._link
        prefetched, self._prefetched = self._prefetched, None
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            try:
                early = await ahead
            except RedisError as exc:
                link.failed(exc)
                self._unacked.clear()  # left to their deadline
                return await self._store.claim(worker_id, queues, limit, lease_seconds)
            prefetched = early[0] if early else (queues[0], [])
        if prefetched is not None and prefetched[0] in queues:
            queue, members = prefetched
            if len(members) > limit:  # slots went elsewhere meanwhile: not the usual case
                await self._give_back(queue, members[limit:])
                members = members[:limit]
            taken = [(queue, members)] if members else []
        elif not link.available():
            return await self._store.claim(worker_id, queues, limit, lease_seconds)
        else:
            try:
                taken = await self._take(queues, limit)
            except RedisError as exc:
                link.failed(exc)
                self._unacked.clear()  # left to their deadline
                return await self._store.claim(worker_id, queues, limit, lease_seconds)
            link.ok()
        self._room = limit
        if not taken:
            if self._poll_store:
                self._poll_store = False
                return await self._store.claim(worker_id, queues, limit, lease_seconds)
            return []
        ids: list[uuid.UUID] = [member_id(m) for _, members in taken for m in members]
        if len(ids) >= limit and len(queues) == 1 and link.available():
            # A full batch: more are likely waiting. Take the next batch now, while the store
            # claims this one, so a busy worker pays for the larger of the two round trips,
            # not their sum. It waits in processing (deadline-bound) for the next claim.
            self._ahead = asyncio.ensure_future(self._take(queues, limit))
        # A store error leaves the members in processing: the sweep recovers them after
        # their deadline.
        jobs = await self._store.claim_ids(worker_id, ids, lease_seconds)
        for queue, members in taken:
            self._unacked.setdefault(queue, []).extend(members)
        self._room = max(1, limit - len(jobs))
        return jobs

    async def _take(self, queues: Sequence[str], limit: int) -> list[tuple[str, list[bytes]]]:
        names = list(dict.fromkeys(queues))
        start = self._turn % len(names)
        self._turn += 1
        taken: list[tuple[str, list[bytes]]] = []
        want = limit
        for queue in names[start:] + names[:start]:
            done = self._unacked.pop(queue, [])
            members = await self._link.take(
                keys=self._keys(queue).all(), args=[want, self._deadline_ms, *done]
            )
            if members:
                taken.append((queue, members))
                want -= len(members)
                if want <= 0:
                    break
        return taken

    async def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> None:
        if self._ahead is not None:
            return  # a batch is on its way: the next claim takes it
        if not self._link.available() or not queues:
            await self._store.wait_for_jobs(queues, timeout)
            return
        try:
            woken = await self._wait_wake(list(dict.fromkeys(queues)), max(timeout, 0.01))
        except RedisError as exc:
            self._link.failed(exc)
            self._unacked.clear()
            return  # the next claim falls back to the store
        self._poll_store = not woken

    async def deregister_worker(self, worker_id: str) -> None:
        """A stopping worker acknowledges its last claims and gives back what it took but
        did not claim, leaving nothing to recover."""
        prefetched, self._prefetched = self._prefetched, None
        ahead, self._ahead = self._ahead, None
        with contextlib.suppress(RedisError):
            early = await ahead if ahead is not None else []
            await self._acknowledge()
            for queue, members in [*early, *([prefetched] if prefetched else [])]:
                if members:
                    await self._give_back(queue, members)
        await self._store.deregister_worker(worker_id)

    async def _give_back(self, queue: str, members: list[bytes]) -> None:
        """Taken, not claimed: out of processing and into ready again, waking a worker."""
        keys = self._keys(queue)
        await cast("Awaitable[int]", self._link.client.zrem(keys.processing, *members))
        await self._link.dispatch(keys=keys.all(), args=members)

    async def _acknowledge(self) -> None:
        while self._unacked:
            queue, members = self._unacked.popitem()
            await self._link.ack(keys=[self._keys(queue).processing], args=members)

    async def _wait_wake(self, queues: list[str], timeout: float) -> bool:
        """Acknowledge the last claims, then block on the queues' wake lists; True if a token
        came. One queue: see `_wait_and_take`. Several: one BLPOP per queue, each on its own
        connection (keys of several queues live in different Cluster slots)."""
        client = self._link.client

        def blpop(queue: str) -> Awaitable[Any]:
            return cast("Awaitable[Any]", client.blpop([self._keys(queue).wake], timeout))

        if len(queues) == 1:
            return await self._wait_and_take(queues[0], timeout)
        await self._acknowledge()
        waits = [asyncio.ensure_future(blpop(q)) for q in queues]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            for w in waits:
                with contextlib.suppress(asyncio.CancelledError, RedisError):
                    await w
        return any(w.result() is not None for w in done if not w.cancelled() and not w.exception())

    async def _wait_and_take(self, queue: str, timeout: float) -> bool:
        """The usual worker, on one queue: the acknowledgement of the last claims, the BLPOP
        and the next take go in one pipeline. Redis runs a blocked client's later commands
        as soon as it is woken, so the take happens at the wake-up without a round trip of
        its own: one round trip per idle cycle, and none between the wake and the claim. The
        take asks for what the last claim left free (the worker's free slots, unless jobs
        finished meanwhile: then the next claim, not full, is followed by an immediate
        wake, since a take that leaves ids behind pushes a token). If the worker is stopped
        while blocked, a take Redis runs before the connection closes is recovered after
        its deadline, like a dead worker's."""
        keys = self._keys(queue)
        unacked, self._unacked = self._unacked, {}
        async with self._link.client.pipeline(transaction=False) as pipe:
            for q, members in unacked.items():
                pipe.zrem(self._keys(q).processing, *members)
            pipe.blpop([keys.wake], timeout)
            # By SHA: a registered script in a pipeline would cost a SCRIPT EXISTS each time.
            pipe.evalsha(self._link.take.sha, 3, *keys.all(), self._room, self._deadline_ms)
            replies = await pipe.execute(raise_on_error=False)
        woken, taken = replies[-2], replies[-1]
        for reply in replies[:-1]:
            if isinstance(reply, Exception):
                raise reply
        if not isinstance(taken, Exception):  # NOSCRIPT after a restart: the next take loads it
            self._prefetched = (queue, list(taken))
        return woken is not None
