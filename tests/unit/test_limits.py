import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.domain.errors import InvalidInput
from conveyor.domain.limits import (
    MAX_DELAY,
    check_name,
    check_text,
    duplicate_key,
    encode_json,
    json_text_problem,
    run_at_from,
)

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


# -- issue 19 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        NOW + timedelta(seconds=MAX_DELAY + 1),
        NOW - timedelta(seconds=MAX_DELAY + 1),
    ],
)
def test_run_at_from_refuses_an_absolute_time_beyond_the_delay_horizon(when: datetime) -> None:
    with pytest.raises(InvalidInput, match="within 3660 days") as exc:
        run_at_from(when, None, NOW, run_at_field="execute_at")
    assert exc.value.field == "execute_at"


def test_run_at_from_takes_an_absolute_time_up_to_the_horizon() -> None:
    for when in (NOW + timedelta(seconds=MAX_DELAY), NOW - timedelta(seconds=MAX_DELAY)):
        assert run_at_from(when, None, NOW) == when


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": "x\x00"}, "payload.a"),
        ({"a": {"b": [1, "\x00"]}}, "payload.a.b[1]"),
        ({"a": {"\x00k": 1}}, "a key of payload.a"),
    ],
)
def test_a_nul_anywhere_in_a_payload_is_refused_and_located(value: object, where: str) -> None:
    with pytest.raises(InvalidInput, match="NUL") as exc:
        encode_json(value, "payload", 1 << 20)
    assert exc.value.field == "payload" and exc.value.message.endswith(where)


def test_backslash_u0000_text_is_not_a_nul() -> None:
    value = {"\\u0000": "\\u0000", "x": "\\\\u0000"}
    assert orjson.loads(encode_json(value, "payload", 1 << 20)) == value


def test_check_text_refuses_nul() -> None:
    assert check_text("k-1", "unique_key") == "k-1"
    with pytest.raises(InvalidInput) as exc:
        check_text("k\x00", "unique_key")
    assert exc.value.field == "unique_key"


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"a": 1, "a": 1}', "a"),
        (b'{"a": {"b": 1, "c": {"d": 1, "d": 2}}}', "d"),
        (b'[{"a": 1}, {"b": 1, "b": 2}]', "b"),
        (b'{"a": "x\\"y", "a": 2}', "a"),  # escapes: the exact check
        (b'{"a": 1, "\\u0061": 2}', "a"),  # the same key, escaped
        (b'{"a": NaN, "a": 2}', "a"),  # orjson refuses NaN: the exact check
        (b'{"a": 1, "b": {"a": 1}, "c": [{"a": 1}]}', None),
        (b'{"a:": ":", "b": "::"}', None),
        (b"{not json", None),
        (b"[]", None),
    ],
)
def test_duplicate_key(raw: bytes, key: str | None) -> None:
    assert duplicate_key(raw) == key


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(st.tuples(st.sampled_from(["a", "b", ":", "a:b", "é", '"']), inner), max_size=4)
    ),
    max_leaves=20,
)


def _text(value: object) -> str:
    """JSON text of a value where a list of pairs is an object, duplicate keys kept."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ", ".join(f"{json.dumps(k)}: {_text(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _has_duplicate(value: object) -> bool:
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        keys = [k for k, _ in value]
        return len(set(keys)) != len(keys) or any(_has_duplicate(v) for _, v in value)
    if isinstance(value, list):
        return any(_has_duplicate(v) for v in value)
    return False


@given(_json_values)
@settings(max_examples=500, deadline=None)
def test_duplicate_key_is_exact(value: object) -> None:
    """The fast path (orjson round trip) finds exactly the duplicates a full parse finds."""
    raw = _text(value).encode()
    assert (duplicate_key(raw) is not None) == _has_duplicate(value), raw


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'\xef\xbb\xbf{"a": 1}', "byte order mark"),
        ('{"a": 1}'.encode("utf-16"), "UTF-8"),
        ('{"a": 1}'.encode("utf-16-le"), "UTF-8"),
        ('{"a": 1}'.encode("utf-32"), "UTF-8"),
        ('{"a": "\u00e9"}'.encode("latin-1"), "UTF-8"),
        (b'{"a": 1, "a": 2}', "twice"),
    ],
)
def test_json_text_problem(raw: bytes, reason: str) -> None:
    problem = json_text_problem(raw)
    assert problem is not None and reason in problem


def test_json_text_problem_passes_utf8_json_and_non_json() -> None:
    for raw in ('{"a": "\u00e9\u4e2d"}'.encode(), b"[1, 2]", b"{not json", b'"\\u0000"'):
        assert json_text_problem(raw) is None


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        check_name("emails\n", "queue")
    assert refused.value.field == "queue"


@pytest.mark.parametrize("value", [None, "s", 0, 1.5, True, [], [1, "a", None], {}])
def test_a_payload_is_any_json_value(value: object) -> None:
    assert orjson.loads(encode_json(value, "payload", 1 << 20)) == value


@pytest.mark.parametrize("value", [[float("nan")], "a\x00", {1, 2}, b"raw"])
def test_a_payload_that_does_not_round_trip_is_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as exc:
        encode_json(value, "payload", 1 << 20)
    assert exc.value.field == "payload"
