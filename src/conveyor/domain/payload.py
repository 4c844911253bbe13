"""Raw bytes inside JSON: how a payload or a result that is bytes (a task of the gRPC
compatibility service `taskqueue.TaskQueueService`, or a handler that returns bytes) travels
through doors and stores that hold JSON.

The marker is an object with exactly one member, `"$bytes"`, whose value is the standard
base64 of the bytes (RFC 4648 section 4, with padding): `{"$bytes": "aGk="}` is b"hi". A
handler whose stored payload is such an object receives the bytes; a handler that returns
bytes has the marker stored as its result. Only the top-level value is translated: bytes
nested inside a larger JSON value are not a thing JSON can hold. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

BYTES_KEY = "$bytes"


def bytes_to_json(data: bytes | bytearray | memoryview) -> dict[str, str]:
    return {BYTES_KEY: base64.b64encode(bytes(data)).decode("ascii")}


def json_to_bytes(value: object) -> bytes | None:
    """The bytes a marker stands for; None when `value` is not a (well-formed) marker."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    text = value.get(BYTES_KEY)
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def for_handler(payload: Any) -> Any:
    """The payload as a handler receives it: the bytes of a marker, else the value itself."""
    data = json_to_bytes(payload)
    return payload if data is None else data


def to_json(value: Any) -> Any:
    """A value as a store keeps it (a handler's result, a payload given to App.enqueue): bytes
    become the marker, anything else is left as is."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes_to_json(value)
    return value
