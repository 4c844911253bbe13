from datetime import UTC, datetime

import pytest

from conveyor.domain.cron import next_fire, next_fires, validate_cron
from conveyor.domain.errors import InvalidInput


def test_next_fire_is_strictly_after():
    t = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert next_fire("0 * * * *", "UTC", t) == datetime(2026, 5, 1, 13, 0, tzinfo=UTC)
    assert next_fire("*/5 * * * *", "UTC", t) == datetime(2026, 5, 1, 12, 5, tzinfo=UTC)


def test_local_time_is_kept_across_dst():
    # 09:00 Paris is 08:00 UTC in winter time and 07:00 UTC after the switch (29 March 2026).
    fires = next_fires("0 9 * * *", "Europe/Paris", datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert [f.hour for f in fires] == [8, 7, 7]
    assert all(f.tzinfo == UTC for f in fires)


def test_six_fields_means_seconds():
    t = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert next_fire("* * * * * */10", "UTC", t) == datetime(2026, 5, 1, 12, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize("expr", ["", "not cron", "61 * * * *", "* * * *", "* * 32 * *", 5])
def test_invalid_expressions_are_refused(expr):
    with pytest.raises(InvalidInput) as info:
        validate_cron(expr)  # type: ignore[arg-type]
    assert info.value.field == "cron"


def test_unknown_zone_is_refused():
    with pytest.raises(InvalidInput) as info:
        validate_cron("* * * * *", "Mars/Olympus")
    assert info.value.field == "timezone"
