from datetime import UTC, datetime, timedelta

import pytest

from conveyor.domain.errors import InvalidInput
from conveyor.domain.limits import MAX_DELAY, run_at_from

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def test_run_at_from_an_absolute_time_or_a_delay() -> None:
    assert run_at_from(None, None, NOW) is None
    assert run_at_from(LATER, None, NOW) == LATER
    assert run_at_from(None, 30, NOW) == NOW + timedelta(seconds=30)
    assert run_at_from(None, 0, NOW) == NOW


def test_run_at_from_refuses_both_naming_each_doors_fields() -> None:
    with pytest.raises(InvalidInput, match="give execute_at or delay, not both") as http:
        run_at_from(LATER, 5, NOW, run_at_field="execute_at")
    assert http.value.field == "delay"
    with pytest.raises(InvalidInput, match="give run_at or delay_seconds, not both") as rpc:
        run_at_from(LATER, 5, NOW, field="delay_seconds")
    assert rpc.value.field == "delay_seconds"


@pytest.mark.parametrize("delay", [-1, MAX_DELAY + 1, float("nan"), float("inf")])
def test_run_at_from_refuses_a_delay_out_of_range(delay: float) -> None:
    with pytest.raises(InvalidInput, match=r"delay_seconds must be in \[0, ") as exc:
        run_at_from(None, delay, NOW, field="delay_seconds")
    assert exc.value.field == "delay_seconds"
