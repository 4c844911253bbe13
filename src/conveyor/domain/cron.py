"""Cron maths, pure: validate an expression and compute fire times in a time zone.

Fire times are computed in the schedule's zone (so `0 9 * * *` in Europe/Paris stays at 09:00
across DST changes) and returned in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from conveyor.domain.errors import InvalidInput


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}", field="timezone") from exc


def validate_cron(expression: str, timezone: str = "UTC") -> None:
    zone(timezone)
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise InvalidInput(f"invalid cron expression {expression!r}", field="cron")
    if len(expression.split()) not in (5, 6):
        raise InvalidInput(f"invalid cron expression {expression!r}", field="cron")


def next_fire(expression: str, timezone: str, after: datetime) -> datetime:
    """The first fire time strictly after `after` (an aware datetime), in UTC."""
    validate_cron(expression, timezone)
    local = after.astimezone(zone(timezone))
    try:
        nxt = croniter(expression, local).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError) as exc:
        raise InvalidInput(f"cron expression {expression!r} never fires", field="cron") from exc
    assert isinstance(nxt, datetime)
    return nxt.astimezone(UTC)


def next_fires(expression: str, timezone: str, after: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    t = after
    for _ in range(count):
        t = next_fire(expression, timezone, t)
        out.append(t)
    return out
