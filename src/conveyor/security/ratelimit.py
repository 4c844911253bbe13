"""Rate limits with a true sliding window: at most N hits in any window of the item's length.

With `redis_url` set, windows live in Redis (the `limits` library's moving window), so every
API server shares one budget per principal; without it they live in process memory (one
server, or `conveyor dev`). When Redis cannot be reached the `rate_limit_fail_open` setting
decides: let traffic through (the store, not Redis, is what must stay correct) or refuse it
with 503 so a limit is never exceeded.

The in-memory windows are `LocalWindows` below rather than `limits`' asyncio MemoryStorage:
that one takes an asyncio lock per hit and schedules an expiry task that hops to a thread,
which profiled at over a tenth of a submit's CPU. A deque of hit times per key gives the
same exact window in O(1) amortised per hit; there is nothing to lock in one event loop.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast

import structlog
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from conveyor.config import Settings
from conveyor.domain.errors import ConfigError, LimiterUnavailable
from conveyor.domain.records import Role

log = structlog.get_logger("conveyor.ratelimit")

REDIS_TIMEOUT = 0.5  # seconds: a slow Redis must not hold every request hostage
_OUTAGE_LOG_EVERY = 10.0
_STORAGE_ERRORS = (StorageError, RedisError, OSError, ConnectionError)

LOGIN_FIRST_DELAY = 1.0  # seconds refused after the first failure over the free allowance
LOGIN_FAILURE_MEMORY = 3600.0  # a (username, address) idle this long starts again from zero


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit, with what the RateLimit-* headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the window has room again

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_after))

    def headers(self) -> dict[str, str]:
        h = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset_after))),
        }
        if not self.allowed:
            h["Retry-After"] = str(self.retry_after)
        return h


def parse_limit(text: str, setting: str) -> RateLimitItem:
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigError(f"{setting}: {text!r} is not a rate limit like '100/second'") from exc


class LocalWindows:
    """Exact sliding windows in process memory (see the module docstring)."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._longest = 0.0  # the longest window seen: a key idle for longer is empty
        self._next_sweep = 0.0

    async def hit(self, item: RateLimitItem, *key: str) -> Decision:
        return self._look(item, key, count=True)

    async def peek(self, item: RateLimitItem, *key: str) -> Decision:
        return self._look(item, key, count=False)

    async def clear(self, item: RateLimitItem, *key: str) -> None:
        self._hits.pop(item.key_for(*key), None)

    def _look(self, item: RateLimitItem, key: tuple[str, ...], *, count: bool) -> Decision:
        now = time.monotonic()
        window = item.get_expiry()
        self._longest = max(self._longest, window)
        if now >= self._next_sweep:
            self._sweep(now)
        name = item.key_for(*key)
        hits = self._hits.get(name)
        if hits is None:
            hits = self._hits[name] = deque()
        while hits and hits[0] <= now - window:
            hits.popleft()
        allowed = len(hits) < item.amount
        if allowed and count:
            hits.append(now)
        reset_after = hits[0] + window - now if hits else 0.0
        return Decision(allowed, item.amount, max(0, item.amount - len(hits)), reset_after)

    def _sweep(self, now: float) -> None:
        """Forget keys idle for longer than any window, so one-off callers (IPs, usernames)
        do not accumulate."""
        self._next_sweep = now + 60.0
        idle = [k for k, h in self._hits.items() if not h or h[-1] <= now - self._longest]
        for k in idle:
            del self._hits[k]


class RedisWindows:
    """Sliding windows shared through Redis (the `limits` library's moving window)."""

    def __init__(self, settings: Settings) -> None:
        url = str(settings.redis_url)
        if not url.startswith("async+"):
            url = "async+" + url
        self._strategy = MovingWindowRateLimiter(
            RedisStorage(
                url,
                implementation="redispy",
                key_prefix=settings.rate_limit_key_prefix,
                wrap_exceptions=True,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
        )

    async def hit(self, item: RateLimitItem, *key: str) -> Decision:
        ok = await self._strategy.hit(item, *key)
        return await self._decision(ok, item, key)

    async def peek(self, item: RateLimitItem, *key: str) -> Decision:
        ok = await self._strategy.test(item, *key)
        return await self._decision(ok, item, key)

    async def clear(self, item: RateLimitItem, *key: str) -> None:
        await self._strategy.clear(item, *key)

    async def _decision(self, ok: bool, item: RateLimitItem, key: tuple[str, ...]) -> Decision:
        stats = await self._strategy.get_window_stats(item, *key)
        return Decision(ok, item.amount, stats.remaining, max(0.0, stats.reset_time - time.time()))


@dataclass(slots=True)
class LoginRecord:
    """Consecutive failed logins of one (username, client address) and when it may try again
    (wall-clock seconds, so servers sharing Redis agree)."""

    failures: int = 0
    blocked_until: float = 0.0


def login_delay(failures: int, free: int, cap: float) -> float:
    """Seconds refused after `failures` consecutive failures: none for the first `free - 1`,
    then 1, 2, 4, ... s, at most `cap`."""
    over = failures - free
    if over < 0:
        return 0.0
    return min(cap, LOGIN_FIRST_DELAY * 2.0 ** min(over, 32))


class LocalLoginRecords:
    """Login failure records in process memory, forgotten after LOGIN_FAILURE_MEMORY idle."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[float, LoginRecord]] = {}
        self._next_sweep = 0.0

    async def get(self, key: str) -> LoginRecord:
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + 60.0
            stale = [
                k for k, (seen, _) in self._records.items() if seen <= now - LOGIN_FAILURE_MEMORY
            ]
            for k in stale:
                del self._records[k]
        hit = self._records.get(key)
        if hit is None or hit[0] <= now - LOGIN_FAILURE_MEMORY:
            return LoginRecord()
        return LoginRecord(hit[1].failures, hit[1].blocked_until)

    async def failed(self, key: str, free: int, cap: float) -> LoginRecord:
        now = time.time()
        record = await self.get(key)
        record.failures += 1
        delay = login_delay(record.failures, free, cap)
        if delay:
            record.blocked_until = now + delay
        self._records[key] = (now, record)
        return LoginRecord(record.failures, record.blocked_until)

    async def clear(self, key: str) -> None:
        self._records.pop(key, None)


class RedisLoginRecords:
    """Login failure records in Redis (a hash per key), shared by every API server."""

    def __init__(self, settings: Settings) -> None:
        url = str(settings.redis_url).removeprefix("async+")
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._prefix = f"{settings.rate_limit_key_prefix}:login:"

    async def get(self, key: str) -> LoginRecord:
        # redis-py types its commands for the sync and async clients at once.
        pending = cast(
            "Awaitable[list[Any]]", self._redis.hmget(self._prefix + key, ["failures", "until"])
        )
        raw = await pending
        return LoginRecord(int(raw[0] or 0), float(raw[1] or 0.0))

    async def failed(self, key: str, free: int, cap: float) -> LoginRecord:
        name = self._prefix + key
        ttl = int(LOGIN_FAILURE_MEMORY * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(name, "failures", 1)
            pipe.pexpire(name, ttl)
            failures = int((await pipe.execute())[0])
        until = 0.0
        delay = login_delay(failures, free, cap)
        if delay:
            until = time.time() + delay
            await cast("Awaitable[int]", self._redis.hset(name, "until", repr(until)))
        return LoginRecord(failures, until)

    async def clear(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)


class RateLimiter:
    """Per-principal request limits by role, per-IP limits before login, and login failures."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fail_open = settings.rate_limit_fail_open
        self._windows = RedisWindows(settings) if settings.redis_url else LocalWindows()
        self.by_role: dict[Role | None, RateLimitItem] = {
            Role.ADMIN: parse_limit(settings.rate_limit_admin, "rate_limit_admin"),
            Role.USER: parse_limit(settings.rate_limit_user, "rate_limit_user"),
            Role.WORKER: parse_limit(settings.rate_limit_worker, "rate_limit_worker"),
            None: parse_limit(settings.rate_limit_anonymous, "rate_limit_anonymous"),
        }
        # Failed logins are counted per (username, client address), never per account alone:
        # a per-account lock would let anyone lock anyone out (issue 19).
        self.login_free_failures = settings.login_max_failures
        self.login_max_delay = float(settings.login_lockout_seconds)
        self._logins: LocalLoginRecords | RedisLoginRecords = (
            RedisLoginRecords(settings) if settings.redis_url else LocalLoginRecords()
        )
        self._last_outage_log = float("-inf")

    @property
    def backend(self) -> str:
        return "redis" if self.settings.redis_url else "memory"

    async def hit(self, item: RateLimitItem, *key: str) -> Decision | None:
        """Count one request. None means "storage down, failing open": no limit applies."""
        try:
            return await self._windows.hit(item, *key)
        except _STORAGE_ERRORS as exc:
            self._outage(exc)
            return None

    async def peek(self, item: RateLimitItem, *key: str) -> Decision | None:
        """Look without counting (is this username locked out?)."""
        try:
            return await self._windows.peek(item, *key)
        except _STORAGE_ERRORS as exc:
            self._outage(exc)
            return None

    async def clear(self, item: RateLimitItem, *key: str) -> None:
        try:
            await self._windows.clear(item, *key)
        except _STORAGE_ERRORS as exc:
            self._outage(exc)

    # -- failed logins, per (username, client address) ----------------------------------------
    @staticmethod
    def _login_key(username: str, address: str) -> str:
        return f"{username.lower()[:128]}|{address[:64]}"

    def _login_decision(self, record: LoginRecord) -> Decision:
        wait = max(0.0, record.blocked_until - time.time())
        free = self.login_free_failures
        return Decision(wait <= 0, free, max(0, free - record.failures), wait)

    async def login_gate(self, username: str, address: str) -> Decision | None:
        """May this address try this username's password now? Refused while the delay set by
        its last failure runs. None: storage down, failing open."""
        try:
            record = await self._logins.get(self._login_key(username, address))
        except _STORAGE_ERRORS as exc:
            self._outage(exc)
            return None
        return self._login_decision(record)

    async def login_failed(self, username: str, address: str) -> Decision | None:
        """Count one failure; after `login_max_failures` in a row the address waits 1, 2, 4 ...
        s (at most `login_lockout_seconds`) before its next try for this username."""
        try:
            record = await self._logins.failed(
                self._login_key(username, address), self.login_free_failures, self.login_max_delay
            )
        except _STORAGE_ERRORS as exc:
            self._outage(exc)
            return None
        return self._login_decision(record)

    async def login_succeeded(self, username: str, address: str) -> None:
        try:
            await self._logins.clear(self._login_key(username, address))
        except _STORAGE_ERRORS as exc:
            self._outage(exc)

    def _outage(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_outage_log >= _OUTAGE_LOG_EVERY:
            self._last_outage_log = now
            log.warning(
                "rate limiter storage unavailable",
                backend=self.backend,
                fail_open=self.fail_open,
                error=f"{type(exc).__name__}: {exc}",
            )
        if self.fail_open:
            return None
        raise LimiterUnavailable(
            "rate limiting is unavailable and the server is set to fail closed; retry later",
            retry_after=1.0,
        ) from exc
