"""What a failed attempt becomes: retry later (exponential backoff with jitter) or dead.

Pure: the caller passes "now" and, in tests, the random source.
"""

from __future__ import annotations

import random
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


class NonRetryable(Exception):
    """Raise from a handler (or wrap an error in it) to send the job straight to the DLQ."""
