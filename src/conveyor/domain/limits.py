"""Limits and name rules of everything a caller may submit, in one place.

Every door and the wire schema take their bounds from here, so the OpenAPI spec, the gRPC
errors and the service's checks cannot drift apart. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import orjson

from conveyor.domain.errors import InvalidInput
from conveyor.domain.job import JSON

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
MAX_PRIORITY = 1_000_000
MAX_RETRIES_LIMIT = 1_000
MAX_TAGS = 32
MAX_UNIQUE_KEY = 255
MAX_BATCH = 1_000
MAX_PAGE = 500
MAX_DELAY = 10 * 366 * 86_400  # ten years: further is a mistake, and datetime arithmetic overflows
MAX_IDS = 1_000

_JSON_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def check_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(
            f"{field} must be 1-128 characters of letters, digits and _ . : - (got {value!r})",
            field=field,
        )
    return value


def check_int(value: object, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(
            f"{field} must be an integer in [{lo}, {hi}] (got {value!r})", field=field
        )
    return value


def check_aware(value: object, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a datetime", field=field)
    if value.tzinfo is None:
        raise InvalidInput(f"{field} must carry a time zone (RFC 3339 with offset)", field=field)
    return value.astimezone(UTC)


def run_at_from(
    run_at: datetime | None,
    delay: float | None,
    now: datetime,
    *,
    field: str = "delay",
    run_at_field: str = "run_at",
) -> datetime | None:
    """When a submission may run: at `run_at`, or `delay` seconds after `now` (not both).

    Each door names the two fields as its wire does (HTTP: execute_at / delay; gRPC: run_at /
    delay_seconds), so an error points at the caller's own field."""
    if delay is None:
        return run_at
    if run_at is not None:
        raise InvalidInput(f"give {run_at_field} or {field}, not both", field=field)
    if not 0 <= delay <= MAX_DELAY:  # also refuses NaN
        raise InvalidInput(f"{field} must be in [0, {MAX_DELAY:g}]", field=field)
    return now + timedelta(seconds=delay)


def check_json_object(value: object, field: str, max_bytes: int) -> JSON:
    """A payload is a JSON object that survives a round trip (no NaN, no dates, no sets)."""
    encode_json_object(value, field, max_bytes)
    return value  # type: ignore[return-value]  # encode_json_object checked it is a dict


def encode_json_object(value: object, field: str, max_bytes: int) -> bytes:
    """check_json_object's checks, returning the encoding they made: the store writes these
    bytes, so a payload is encoded once per submit."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    try:
        encoded = orjson.dumps(value, option=_JSON_OPTS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidInput(f"{field} is not JSON-serialisable: {exc}", field=field) from exc
    if len(encoded) > max_bytes:
        raise InvalidInput(
            f"{field} is {len(encoded)} bytes, over the {max_bytes} limit", field=field
        )
    # orjson writes NaN/Infinity as null: refuse them rather than silently change the payload.
    # With no null in the output there was none to find, and the walk is skipped.
    if b"null" in encoded:
        _reject_non_finite(value, field)
    return encoded


def _reject_non_finite(value: object, field: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{field} contains a non-finite number", field=field)
    if isinstance(value, dict):
        for v in value.values():
            _reject_non_finite(v, field)
    elif isinstance(value, list):
        for v in value:
            _reject_non_finite(v, field)
