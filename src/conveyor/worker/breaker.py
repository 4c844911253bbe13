"""Circuit breakers, one per job type, so a sick dependency stops eating attempts.

When a type's handlers fail too often, retrying them only burns attempts (jobs reach the DLQ
for an outage that is not their fault) and hammers whatever is down. The breaker opens; its
jobs are handed back with a later run_at and no attempt charged; after `open_for` seconds one
job runs as a probe (half-open), and its outcome closes the breaker or opens it again.

Pure state machine: the clock is injected and nothing here does I/O, so it is unit-tested alone
(tests/unit/test_breaker.py); the executor asks `allow()` before a job and reports `record()`.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BUCKETS = 60  # resolution of the sliding window


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_rate: float = 0.5  # open when failures / calls >= this over the window...
    min_calls: int = 10  # ...and at least this many calls were seen in it
    window: float = 60.0  # seconds of recent outcomes considered
    open_for: float = 30.0  # seconds before a half-open probe is allowed

    def __post_init__(self) -> None:
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if self.min_calls < 1 or self.window <= 0 or self.open_for <= 0:
            raise ValueError("min_calls, window and open_for must be positive")


Transition = Callable[[BreakerState, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Transition | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self._clock = clock
        self._on_transition = on_transition
        # The window as BUCKETS slices of [start, calls, failures] plus running totals: a
        # record is O(1) and memory stays bounded at thousands of jobs per second.
        self._buckets: deque[list[float]] = deque()
        self._bucket_width = self.config.window / BUCKETS
        self._calls = 0
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probing = False

    # -- asking -------------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May a job run now? In OPEN after `open_for`, the first caller becomes the probe
        (HALF_OPEN) and everyone else is refused until its outcome is recorded."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._clock() < self._opened_at + self.config.open_for:
                return False
            self._move(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def retry_in(self) -> float:
        """Seconds until a deferred job is worth trying again."""
        if self._state is BreakerState.OPEN:
            return max(0.0, self._opened_at + self.config.open_for - self._clock())
        if self._state is BreakerState.HALF_OPEN:
            # A probe is running; its outcome comes within one job's time, unknown here.
            return min(self.config.open_for, 1.0)
        return 0.0

    # -- telling ------------------------------------------------------------------------
    def record(self, ok: bool) -> None:
        now = self._clock()
        if self._state is BreakerState.HALF_OPEN:
            self._probing = False
            self._clear()
            if ok:
                self._move(BreakerState.CLOSED)
            else:
                self._open(now)
            return
        if self._state is BreakerState.OPEN:
            return  # a job that started before the breaker opened: its news is stale
        self._trim(now)
        if not self._buckets or now >= self._buckets[-1][0] + self._bucket_width:
            self._buckets.append([now, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        self._calls += 1
        if not ok:
            bucket[2] += 1
            self._failures += 1
        if (
            self._calls >= self.config.min_calls
            and self._failures / self._calls >= self.config.failure_rate
        ):
            self._open(now)

    def abandon(self) -> None:
        """A job that was allowed ended with no verdict (cancelled, handed back): free the
        probe slot so the next job can probe."""
        self._probing = False

    # -- reporting ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        self._trim(self._clock())
        calls, failures = self._calls, self._failures
        return {
            "state": self._state.value,
            "calls": calls,
            "failures": failures,
            "failure_rate": round(failures / calls, 4) if calls else 0.0,
            "retry_in": round(self.retry_in(), 3),
        }

    # -- internals ----------------------------------------------------------------------
    def _trim(self, now: float) -> None:
        horizon = now - self.config.window
        while self._buckets and self._buckets[0][0] < horizon:
            _, calls, failures = self._buckets.popleft()
            self._calls -= int(calls)
            self._failures -= int(failures)

    def _clear(self) -> None:
        self._buckets.clear()
        self._calls = self._failures = 0

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._clear()
        self._probing = False
        self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old is not new and self._on_transition is not None:
            self._on_transition(old, new)


BoardTransition = Callable[[str, BreakerState, BreakerState], None]


class BreakerBoard:
    """One breaker per job type, created on first use. `snapshot()` is what the worker
    publishes in its registry row (GET /v1/workers) and what metrics read."""

    def __init__(
        self,
        config: BreakerConfig | None = None,
        *,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        on_transition: BoardTransition | None = None,
    ) -> None:
        self.config = config or BreakerConfig()
        self.enabled = enabled
        self._clock = clock
        self._on_transition = on_transition
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, job_type: str) -> CircuitBreaker:
        b = self._breakers.get(job_type)
        if b is None:
            hook = self._on_transition

            def moved(old: BreakerState, new: BreakerState) -> None:
                if hook is not None:
                    hook(job_type, old, new)

            b = CircuitBreaker(self.config, clock=self._clock, on_transition=moved)
            self._breakers[job_type] = b
        return b

    def allow(self, job_type: str) -> bool:
        return not self.enabled or self.get(job_type).allow()

    def states(self) -> dict[str, BreakerState]:
        return {t: b.state for t, b in self._breakers.items()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {t: b.snapshot() for t, b in sorted(self._breakers.items())}
