"""The circuit breaker state machine on a fake clock: no I/O, no sleeps."""

from __future__ import annotations

import pytest

from conveyor.worker.breaker import BreakerBoard, BreakerConfig, BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


CFG = BreakerConfig(failure_rate=0.5, min_calls=4, window=10.0, open_for=5.0)


def make(clock: Clock) -> tuple[CircuitBreaker, list[tuple[BreakerState, BreakerState]]]:
    moves: list[tuple[BreakerState, BreakerState]] = []
    b = CircuitBreaker(CFG, clock=clock, on_transition=lambda o, n: moves.append((o, n)))
    return b, moves


def test_stays_closed_below_min_calls_even_if_all_fail() -> None:
    b, _ = make(Clock())
    for _ in range(3):
        assert b.allow()
        b.record(False)
    assert b.state is BreakerState.CLOSED


def test_stays_closed_below_the_failure_rate() -> None:
    b, _ = make(Clock())
    for ok in (True, True, False, True, True, False, True):  # 2/7 < 0.5
        b.record(ok)
    assert b.state is BreakerState.CLOSED


def test_opens_at_the_threshold_and_refuses_until_open_for_passes() -> None:
    clock = Clock()
    b, moves = make(clock)
    for ok in (True, False, True, False):  # 2/4 = 0.5
        b.record(ok)
    assert b.state is BreakerState.OPEN
    assert moves == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert not b.allow()
    assert b.retry_in() == pytest.approx(5.0)
    clock.advance(4.9)
    assert not b.allow()
    assert b.retry_in() == pytest.approx(0.1)


def test_half_open_allows_exactly_one_probe_and_success_closes() -> None:
    clock = Clock()
    b, moves = make(clock)
    for _ in range(4):
        b.record(False)
    clock.advance(5.0)
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert not b.allow() and not b.allow()  # one probe at a time
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert b.allow() and b.allow()
    assert moves == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    # A fresh start: old failures do not count against the closed breaker.
    b.record(False)
    assert b.state is BreakerState.CLOSED


def test_failed_probe_reopens_for_another_full_period() -> None:
    clock = Clock()
    b, _ = make(clock)
    for _ in range(4):
        b.record(False)
    clock.advance(5.0)
    assert b.allow()
    b.record(False)
    assert b.state is BreakerState.OPEN
    assert b.retry_in() == pytest.approx(5.0)
    clock.advance(4.0)
    assert not b.allow()
    clock.advance(1.0)
    assert b.allow()


def test_abandoned_probe_frees_the_slot() -> None:
    clock = Clock()
    b, _ = make(clock)
    for _ in range(4):
        b.record(False)
    clock.advance(5.0)
    assert b.allow()
    assert not b.allow()
    b.abandon()
    assert b.allow()
    assert b.state is BreakerState.HALF_OPEN


def test_old_outcomes_slide_out_of_the_window() -> None:
    clock = Clock()
    b, _ = make(clock)
    for _ in range(3):
        b.record(False)
    clock.advance(10.5)  # those three failures are now outside the 10 s window
    for ok in (True, True, True, False):
        b.record(ok)
    assert b.state is BreakerState.CLOSED
    assert b.snapshot()["calls"] == 4


def test_outcomes_reported_while_open_are_ignored() -> None:
    clock = Clock()
    b, _ = make(clock)
    for _ in range(4):
        b.record(False)
    b.record(True)  # a job that started before the breaker opened
    assert b.state is BreakerState.OPEN


def test_snapshot_reports_state_and_rate() -> None:
    clock = Clock()
    b, _ = make(clock)
    b.record(True)
    b.record(False)
    assert b.snapshot() == {
        "state": "closed",
        "calls": 2,
        "failures": 1,
        "failure_rate": 0.5,
        "retry_in": 0.0,
    }


def test_board_keeps_one_breaker_per_type_and_reports_transitions() -> None:
    clock = Clock()
    seen: list[tuple[str, BreakerState, BreakerState]] = []
    board = BreakerBoard(CFG, clock=clock, on_transition=lambda t, o, n: seen.append((t, o, n)))
    for _ in range(4):
        board.get("email.send").record(False)
    board.get("sms.send").record(True)
    assert not board.allow("email.send")
    assert board.allow("sms.send")
    assert board.states() == {"email.send": BreakerState.OPEN, "sms.send": BreakerState.CLOSED}
    assert seen == [("email.send", BreakerState.CLOSED, BreakerState.OPEN)]
    assert list(board.snapshot()) == ["email.send", "sms.send"]


def test_disabled_board_always_allows() -> None:
    board = BreakerBoard(CFG, enabled=False, clock=Clock())
    for _ in range(10):
        board.get("x").record(False)
    assert board.allow("x")


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        BreakerConfig(failure_rate=0)
    with pytest.raises(ValueError):
        BreakerConfig(min_calls=0)
