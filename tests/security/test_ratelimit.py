"""The sliding-window limiter on a real Redis, in memory, and with Redis down."""

from __future__ import annotations

import time

import pytest

from conveyor.config import Settings
from conveyor.domain.errors import LimiterUnavailable
from conveyor.domain.records import Role
from conveyor.security import ratelimit
from conveyor.security.ratelimit import RateLimiter, parse_limit
from tests.conftest import DEAD_REDIS_URL
from tests.helpers import wait_until


@pytest.fixture(params=["memory", "redis"])
def limiter(request: pytest.FixtureRequest, key_prefix: str) -> RateLimiter:
    kw: dict[str, object] = {"rate_limit_key_prefix": key_prefix}
    if request.param == "redis":
        kw["redis_url"] = request.getfixturevalue("redis_url")
    return RateLimiter(Settings(**kw))  # type: ignore[arg-type]


async def test_allows_up_to_the_limit_then_refuses_with_retry_after(limiter: RateLimiter) -> None:
    item = parse_limit("3/2 seconds", "t")
    decisions = [await limiter.hit(item, "alice") for _ in range(4)]
    assert all(d is not None for d in decisions)
    assert [d.allowed for d in decisions if d] == [True, True, True, False]
    assert [d.remaining for d in decisions if d] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused is not None
    assert refused.limit == 3
    assert 0 < refused.reset_after <= 2.0
    headers = refused.headers()
    assert headers["RateLimit-Limit"] == "3"
    assert headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 2
    # Another key has its own window.
    other = await limiter.hit(item, "bob")
    assert other is not None and other.allowed


async def test_window_slides(limiter: RateLimiter) -> None:
    item = parse_limit("2/second", "t")
    assert (await limiter.hit(item, "k")).allowed  # type: ignore[union-attr]
    assert (await limiter.hit(item, "k")).allowed  # type: ignore[union-attr]
    assert not (await limiter.hit(item, "k")).allowed  # type: ignore[union-attr]
    started = time.monotonic()

    async def room() -> bool:
        d = await limiter.peek(item, "k")
        return d is not None and d.allowed

    await wait_until(room, timeout=3, message="the window to slide")
    assert time.monotonic() - started <= 1.5


async def test_clear_resets(limiter: RateLimiter) -> None:
    item = parse_limit("1/minute", "t")
    await limiter.hit(item, "k")
    assert not (await limiter.hit(item, "k")).allowed  # type: ignore[union-attr]
    await limiter.clear(item, "k")
    assert (await limiter.hit(item, "k")).allowed  # type: ignore[union-attr]


async def test_two_limiters_share_one_redis_window(redis_url: str, key_prefix: str) -> None:
    """Two API servers on one Redis share a principal's budget."""
    s = Settings(redis_url=redis_url, rate_limit_key_prefix=key_prefix)
    a, b = RateLimiter(s), RateLimiter(s)
    item = parse_limit("2/minute", "t")
    assert (await a.hit(item, "p")).allowed  # type: ignore[union-attr]
    assert (await b.hit(item, "p")).allowed  # type: ignore[union-attr]
    assert not (await a.hit(item, "p")).allowed  # type: ignore[union-attr]


async def test_limits_per_role_come_from_settings() -> None:
    lim = RateLimiter(
        Settings(
            rate_limit_user="7/second", rate_limit_admin="9/minute", rate_limit_anonymous="1/hour"
        )
    )
    assert (lim.by_role[Role.USER].amount, lim.by_role[Role.ADMIN].amount) == (7, 9)
    assert lim.by_role[None].amount == 1


async def test_redis_down_fail_open_lets_requests_through() -> None:
    lim = RateLimiter(Settings(redis_url=DEAD_REDIS_URL, rate_limit_fail_open=True))
    item = parse_limit("1/minute", "t")
    for _ in range(3):
        assert await lim.hit(item, "p") is None  # no verdict: no limit applies


async def test_redis_down_fail_closed_refuses() -> None:
    lim = RateLimiter(Settings(redis_url=DEAD_REDIS_URL, rate_limit_fail_open=False))
    with pytest.raises(LimiterUnavailable):
        await lim.hit(parse_limit("100/minute", "t"), "p")


async def test_memory_windows_forget_idle_keys_only_after_their_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: clock[0])
    windows = ratelimit.LocalWindows()
    hourly, daily = parse_limit("1/hour", "t"), parse_limit("1/day", "t")
    assert (await windows.hit(hourly, "a")).allowed
    assert (await windows.hit(daily, "b")).allowed
    clock[0] += 2 * 3600  # both idle for two hours; sweeps have run meanwhile
    await windows.peek(hourly, "other")
    assert not (await windows.hit(daily, "b")).allowed  # still inside its day
    assert (await windows.hit(hourly, "a")).allowed
    clock[0] += 86_400  # now every key is older than the longest window
    await windows.peek(hourly, "other")
    assert [k for k in windows._hits if "other" not in k] == []


async def test_login_failures_delay_grows_per_username_and_address(limiter: RateLimiter) -> None:
    """Issue 19: failures count per (username, address), the delay doubles, a success clears."""
    free = limiter.login_free_failures
    for _ in range(free - 1):
        d = await limiter.login_failed("admin", "10.0.0.1")
        assert d is not None and d.allowed
    first = await limiter.login_failed("admin", "10.0.0.1")
    assert first is not None and not first.allowed and 0.5 < first.reset_after <= 1.0
    second = await limiter.login_failed("admin", "10.0.0.1")
    assert second is not None and 1.5 < second.reset_after <= 2.0
    gate = await limiter.login_gate("admin", "10.0.0.1")
    assert gate is not None and not gate.allowed and gate.headers()["Retry-After"] == "2"
    # Another address, or another username from the same address, is not held back.
    for other in (("admin", "10.0.0.2"), ("bob", "10.0.0.1")):
        g = await limiter.login_gate(*other)
        assert g is not None and g.allowed, other
    await limiter.login_succeeded("admin", "10.0.0.1")
    g = await limiter.login_gate("admin", "10.0.0.1")
    assert g is not None and g.allowed and g.remaining == free


async def test_login_delay_is_capped(limiter: RateLimiter) -> None:
    for _ in range(limiter.login_free_failures + 20):
        d = await limiter.login_failed("admin", "10.0.0.1")
    assert d is not None and d.reset_after <= limiter.login_max_delay


async def test_login_throttle_redis_down_fails_open_or_closed() -> None:
    lim = RateLimiter(Settings(redis_url=DEAD_REDIS_URL, rate_limit_fail_open=True))
    assert await lim.login_gate("admin", "10.0.0.1") is None
    assert await lim.login_failed("admin", "10.0.0.1") is None
    closed = RateLimiter(Settings(redis_url=DEAD_REDIS_URL, rate_limit_fail_open=False))
    with pytest.raises(LimiterUnavailable):
        await closed.login_gate("admin", "10.0.0.1")
