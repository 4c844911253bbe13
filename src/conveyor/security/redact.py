"""A structlog processor that keeps credentials out of logs, whoever logs them.

Conveyor's own code never logs a password or token; this is the net under everyone else's
code (handlers logging their payloads, a future debug line): values of keys that name a secret
are replaced, and bearer tokens or JWTs inside strings are masked.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

SECRET_KEYS = re.compile(
    r"pass(word|wd)?|secret|token|authorization|api[_-]?key|private[_-]?key|cookie", re.I
)
# Bearer credentials and anything shaped like a JWT (three base64url parts, the first "eyJ").
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Secrets written into free text: `password=hunter2`, `token: abc` (a driver's error message, a
# connection string in a traceback), and the password of a URL's user info.
_ASSIGNED = re.compile(
    r"(?i)\b(pass(?:word|wd)?|secret|token|api[_-]?key)(\s*[=:]\s*)"
    r"('[^']*'|\"[^\"]*\"|[^\s,;&)]+)"
)
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
REDACTED = "[redacted]"


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        value = _JWT.sub(REDACTED, _BEARER.sub("Bearer " + REDACTED, value))
        value = _ASSIGNED.sub(lambda m: m.group(1) + m.group(2) + REDACTED, value)
        return _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", value)
    if depth > 4:
        return value
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and SECRET_KEYS.search(k) else _clean(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(_clean(v, depth + 1) for v in value)
    return value


def redact_text(value: str) -> str:
    """`value` with any secret in it masked (a URL's password, `password=…`, a bearer token),
    for a string a caller logs on purpose, e.g. the store URL."""
    return str(_clean(value))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if key != "event" and SECRET_KEYS.search(key) and value is not None:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _clean(value)
    return event_dict
