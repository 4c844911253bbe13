import random
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.domain.errors import IllegalTransition
from conveyor.domain.job import TERMINAL, TRANSITIONS, JobStatus, can_transition, ensure_transition
from conveyor.domain.retry import Dead, Retry, RetryPolicy

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_terminal_states_have_no_way_out_except_dead_requeue():
    assert TRANSITIONS[JobStatus.COMPLETED] == frozenset()
    assert TRANSITIONS[JobStatus.CANCELLED] == frozenset()
    assert TRANSITIONS[JobStatus.DEAD] == {JobStatus.QUEUED}
    assert {s for s in JobStatus if s.terminal} == TERMINAL


@pytest.mark.parametrize("src", [s for s in JobStatus if not s.terminal])
def test_every_live_status_can_be_cancelled(src):
    assert can_transition(src, JobStatus.CANCELLED)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (JobStatus.COMPLETED, JobStatus.QUEUED),
        (JobStatus.CANCELLED, JobStatus.RUNNING),
        (JobStatus.SCHEDULED, JobStatus.RUNNING),  # must be promoted first
        (JobStatus.RETRYING, JobStatus.COMPLETED),
        (JobStatus.DEAD, JobStatus.CANCELLED),
    ],
)
def test_illegal_transitions_raise(src, dst):
    with pytest.raises(IllegalTransition, match=f"{src.value} job cannot become {dst.value}"):
        ensure_transition(src, dst)


def test_backoff_without_jitter_doubles_and_caps():
    p = RetryPolicy(base=2.0, factor=2.0, cap=10.0, jitter=False)
    assert [p.delay(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]


def test_jitter_stays_between_half_and_full_delay():
    p = RetryPolicy(base=1.0, cap=1000.0)
    rng = random.Random(7)
    for attempt in range(1, 10):
        full = min(1000.0, 2.0 ** (attempt - 1))
        d = p.delay(attempt, rng)
        assert full / 2 <= d <= full
    # jitter actually spreads: two draws for the same attempt differ
    assert p.delay(5, random.Random(1)) != p.delay(5, random.Random(2))


def test_attempt_must_be_positive():
    with pytest.raises(ValueError):
        RetryPolicy().delay(0)


def test_decide_retries_until_max_then_dead():
    p = RetryPolicy(base=1.0, jitter=False)
    first = p.decide(attempt=1, max_retries=2, now=NOW)
    assert first == Retry(NOW + timedelta(seconds=1))
    assert p.decide(attempt=2, max_retries=2, now=NOW) == Retry(NOW + timedelta(seconds=2))
    last = p.decide(attempt=3, max_retries=2, now=NOW)
    assert isinstance(last, Dead)
    assert "3 attempts" in last.reason


def test_zero_retries_dies_on_first_failure():
    assert isinstance(RetryPolicy().decide(attempt=1, max_retries=0, now=NOW), Dead)


def test_non_retryable_goes_straight_to_dead():
    d = RetryPolicy().decide(attempt=1, max_retries=10, now=NOW, retryable=False)
    assert d == Dead("non-retryable error")
