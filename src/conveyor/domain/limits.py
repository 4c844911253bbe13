"""Limits and name rules of everything a caller may submit, in one place.

Every door and the wire schema take their bounds from here, so the OpenAPI spec, the gRPC
errors and the service's checks cannot drift apart. Pure: no I/O.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from conveyor.domain.errors import InvalidInput

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
# How orjson writes U+0000. PostgreSQL keeps NUL in neither text nor jsonb (SQLite keeps both):
# it is refused here, for every store alike, rather than be a store error at write time.
_ESCAPED_NUL = b"\\u0000"


def check_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise InvalidInput(
            f"{field} must be 1-128 characters of letters, digits and _ . : - (got {value!r})",
            field=field,
        )
    return value


def check_text(value: str, field: str) -> str:
    """Free text a store keeps as text (unique keys): anything but NUL."""
    if "\x00" in value:
        raise InvalidInput(f"{field} must not contain the NUL character (\\u0000)", field=field)
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
        if run_at is not None and run_at.tzinfo is not None:  # naive: validate() refuses it
            check_horizon(run_at, now, run_at_field)
        return run_at
    if run_at is not None:
        raise InvalidInput(f"give {run_at_field} or {field}, not both", field=field)
    if not 0 <= delay <= MAX_DELAY:  # also refuses NaN
        raise InvalidInput(f"{field} must be in [0, {MAX_DELAY:g}]", field=field)
    return now + timedelta(seconds=delay)


def check_horizon(when: datetime, now: datetime, field: str) -> datetime:
    """An absolute time has the horizon a delay has: at most MAX_DELAY seconds from now, either
    way (year 1 and year 9999 are mistakes, not schedules)."""
    if abs((when - now).total_seconds()) > MAX_DELAY:
        raise InvalidInput(
            f"{field} must be within {MAX_DELAY // 86_400} days (about ten years) of now, "
            f"past or future (got {when.isoformat()})",
            field=field,
        )
    return when


def check_json(value: object, field: str, max_bytes: int) -> Any:
    """A payload is any JSON value (object, array, string, number, boolean, null) that
    survives a round trip: no NaN, no dates, no sets, no NUL."""
    encode_json(value, field, max_bytes)
    return value


def encode_json(value: object, field: str, max_bytes: int) -> bytes:
    """check_json's checks, returning the encoding they made: the store writes these bytes,
    so a payload is encoded once per submit."""
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
    # Likewise NUL: with no escaped NUL in the output there is none (the bytes can also be an
    # escaped backslash followed by "u0000", hence the walk to be sure).
    if _ESCAPED_NUL in encoded:
        where = _find_nul(value, field)
        if where is not None:
            raise InvalidInput(
                f"{field} must not contain the NUL character (\\u0000); found in {where}",
                field=field,
            )
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


def _find_nul(value: object, path: str) -> str | None:
    """Where the first NUL is, in a key or a string value: "payload.a[2]" (or None)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return f"a key of {path}"
            found = _find_nul(v, f"{path}.{k}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_nul(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def encode_result(value: object) -> bytes:
    """A handler's result as the store keeps it, the same on every store. Raises TypeError
    (not JSON) or ValueError (a NUL character, which PostgreSQL cannot keep): the worker
    reports either as the handler's failure rather than lose the whole outcome batch."""
    encoded = orjson.dumps(value)
    if _ESCAPED_NUL in encoded:
        where = _find_nul(value, "result")
        if where is not None:
            raise ValueError(
                f"the result contains the NUL character (\\u0000) in {where}, "
                "which the store cannot keep"
            )
    return encoded


def storable_text(text: str) -> str:
    """Free text from a handler (an error, a traceback) as every store can keep it: a NUL
    character is written as the four characters \\x00."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text


# -- JSON text -----------------------------------------------------------------------------
# What a door accepts as JSON text, before any parser reads it. RFC 8259 §8.1: JSON exchanged
# between systems is UTF-8, with no byte order mark. §4: names should be unique, and parsers
# disagree on duplicates (first wins, last wins, error): a body whose meaning depends on the
# parser is refused, not read one way here and another way by the caller's tools.

_BOM = b"\xef\xbb\xbf"


def json_text_problem(raw: bytes) -> str | None:
    """Why `raw` is not JSON text we accept (encoding, duplicate keys), or None. Text that is
    not JSON at all passes: the parser that reads it next says what is wrong with it."""
    if raw.startswith(_BOM):
        return "it must be UTF-8 without a byte order mark (RFC 8259 section 8.1)"
    # UTF-16 and UTF-32 put NUL bytes beside every ASCII character; UTF-8 JSON has none (a NUL
    # in a string is written \u0000). Some parsers (Python's json) guess those encodings.
    if b"\x00" in raw:
        return "it must be UTF-8 (RFC 8259 section 8.1), and it has NUL bytes (UTF-16?)"
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return "it must be UTF-8 (RFC 8259 section 8.1)"
    key = duplicate_key(raw)
    if key is not None:
        return f"the key {key!r} appears twice in one object; keys must be unique"
    return None


_UNPARSED: Any = object()


def duplicate_key(raw: bytes, parsed: Any = _UNPARSED) -> str | None:
    """A key that appears twice in one object of the JSON text `raw` (None: no duplicate, or
    `raw` is not JSON). `parsed` is `orjson.loads(raw)` when the caller has it already.

    The common case costs about a microsecond for a small body: orjson reads it (keeping the
    last of duplicate keys) and writes it back, and the two texts have as many ":" bytes
    exactly when no key was dropped. Outside strings a ":" follows each key; inside, a ":" is
    kept as is by the round trip; a dropped member takes at least its own ":" with it. That
    only holds when no string holds an escape (a colon written \\u003a), so text with a
    backslash, or that orjson refuses (NaN, huge integers), gets the exact check: Python's
    json parser reporting each object's members."""
    if b"\\" not in raw:
        try:
            value = orjson.loads(raw) if parsed is _UNPARSED else parsed
            rewritten = orjson.dumps(value)
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            pass
        else:
            if raw.count(b":") == rewritten.count(b":"):
                return None
    try:
        _PAIRS_DECODER.decode(raw.decode("utf-8"))
    except _DuplicateKey as dup:
        return dup.key
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError)
        return None
    return None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_members(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len({k for k, _ in pairs}) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise _DuplicateKey(k)
            seen.add(k)
    # The parsed value is thrown away: returning None saves building each object.


_PAIRS_DECODER = json.JSONDecoder(object_pairs_hook=_unique_members)
