"""What a failed attempt becomes: retry later (exponential backoff with jitter) or dead; and
how a process waits for a dependency at start-up (`retry_until_ok`).

Pure: the caller passes "now" and, in tests, the random source. `retry_until_ok` only waits
(no I/O of its own): the caller passes the attempt and says what to log.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


def retries_exhausted(attempt: int, max_retries: int) -> bool:
    """Attempt `attempt` (counting from 1) was the last one allowed: max_retries retries follow
    the first attempt."""
    return attempt > max_retries


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime


@dataclass(frozen=True, slots=True)
class Dead:
    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter on the upper half, capped.

    delay(n) = min(cap, base * factor**(n-1)), then a random point in [delay/2, delay]: the
    floor keeps retries from hammering a sick dependency, the jitter keeps a burst of failures
    from retrying in lockstep.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: bool = True

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        if attempt < 1:
            raise ValueError("attempt starts at 1")
        raw = min(self.cap, self.base * self.factor ** (attempt - 1))
        if not self.jitter:
            return raw
        r = (rng or random).random()
        return raw / 2 + r * raw / 2

    def decide(
        self,
        *,
        attempt: int,
        max_retries: int,
        now: datetime,
        retryable: bool = True,
        rng: random.Random | None = None,
    ) -> Retry | Dead:
        """What happens after attempt number `attempt` failed."""
        if not retryable:
            return Dead("non-retryable error")
        if retries_exhausted(attempt, max_retries):
            return Dead(f"retries exhausted after {attempt} attempts")
        return Retry(now + timedelta(seconds=self.delay(attempt, rng)))


# A process waiting for its store at start-up: 0.5 s doubling to 10 s, with jitter.
STARTUP_BACKOFF = RetryPolicy(base=0.5, factor=2.0, cap=10.0)


async def retry_until_ok(
    attempt: Callable[[], Awaitable[object]],
    *,
    retry_on: tuple[type[BaseException], ...],
    on_retry: Callable[[int, float, BaseException], None],
    stop: asyncio.Event | None = None,
    policy: RetryPolicy = STARTUP_BACKOFF,
    rng: random.Random | None = None,
) -> bool:
    """Call `attempt` until it returns without raising one of `retry_on` (anything else
    propagates: a wrong password is not worth waiting for). After failed attempt n,
    `on_retry(n, delay, error)` says so, then the wait is `policy.delay(n)`. True once an
    attempt succeeded; False if `stop` was set first (checked before each attempt and during
    each wait)."""
    n = 0
    while stop is None or not stop.is_set():
        n += 1
        try:
            await attempt()
        except retry_on as exc:
            delay = policy.delay(n, rng)
            on_retry(n, delay, exc)
        else:
            return True
        if stop is None:
            await asyncio.sleep(delay)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return False


class NonRetryable(Exception):
    """Raise from a handler (or wrap an error in it) to send the job straight to the DLQ."""
