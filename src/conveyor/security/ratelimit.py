"""Rate limits with a true sliding window (the `limits` library's moving window).

With `redis_url` set, counters live in Redis, so every API server shares one budget per
principal; without it they live in process memory (one server, or `conveyor dev`). When Redis
cannot be reached the `rate_limit_fail_open` setting decides: let traffic through (the store,
not Redis, is what must stay correct) or refuse it with 503 so a limit is never exceeded.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from conveyor.config import Settings
from conveyor.errors import ConfigError, LimiterUnavailable
from conveyor.models import Role

log = structlog.get_logger("conveyor.ratelimit")

REDIS_TIMEOUT = 0.5  # seconds: a slow Redis must not hold every request hostage
_OUTAGE_LOG_EVERY = 10.0


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


def _storage(settings: Settings) -> Storage:
    if not settings.redis_url:
        return MemoryStorage()
    url = settings.redis_url
    if not url.startswith("async+"):
        url = "async+" + url
    return RedisStorage(
        url,
        implementation="redispy",
        key_prefix=settings.rate_limit_key_prefix,
        wrap_exceptions=True,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
    )


class RateLimiter:
    """Per-principal request limits by role, per-IP limits before login, and login failures."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.fail_open = settings.rate_limit_fail_open
        self._storage = _storage(settings)
        self._strategy = MovingWindowRateLimiter(self._storage)
        self.by_role: dict[Role | None, RateLimitItem] = {
            Role.ADMIN: parse_limit(settings.rate_limit_admin, "rate_limit_admin"),
            Role.USER: parse_limit(settings.rate_limit_user, "rate_limit_user"),
            Role.WORKER: parse_limit(settings.rate_limit_worker, "rate_limit_worker"),
            None: parse_limit(settings.rate_limit_anonymous, "rate_limit_anonymous"),
        }
        self.login_failures = RateLimitItemPerSecond(
            settings.login_max_failures, max(1, math.ceil(settings.login_lockout_seconds))
        )
        self._last_outage_log = float("-inf")

    @property
    def backend(self) -> str:
        return "redis" if self.settings.redis_url else "memory"

    async def hit(self, item: RateLimitItem, *key: str) -> Decision | None:
        """Count one request. None means "storage down, failing open": no limit applies."""
        try:
            ok = await self._strategy.hit(item, *key)
            stats = await self._strategy.get_window_stats(item, *key)
        except (StorageError, OSError, ConnectionError) as exc:
            self._outage(exc)
            return None
        return Decision(ok, item.amount, stats.remaining, max(0.0, stats.reset_time - time.time()))

    async def peek(self, item: RateLimitItem, *key: str) -> Decision | None:
        """Look without counting (is this username locked out?)."""
        try:
            ok = await self._strategy.test(item, *key)
            stats = await self._strategy.get_window_stats(item, *key)
        except (StorageError, OSError, ConnectionError) as exc:
            self._outage(exc)
            return None
        return Decision(ok, item.amount, stats.remaining, max(0.0, stats.reset_time - time.time()))

    async def clear(self, item: RateLimitItem, *key: str) -> None:
        try:
            await self._strategy.clear(item, *key)
        except (StorageError, OSError, ConnectionError) as exc:
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
