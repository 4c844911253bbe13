"""X-Request-ID: one id per request, shared by the gateway's access log, Conveyor's log lines
and the caller, so a slow or failed request can be followed from NGINX into the server.

The gateway (deploy/nginx) sets the header, passing on a caller's own or making one; a request
that reaches the server directly gets one made here. An incoming id is taken only when it is a
short token of safe characters: it lands in every log line of the request, and a header is no
place to let a caller write arbitrary text (or a megabyte) into the logs.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

HEADER = b"x-request-id"
MAX_LENGTH = 128
_SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's id: the caller's X-Request-ID when it is a safe token, else a new one."""
    for name, value in headers:
        if name == HEADER:  # ASGI header names are lower-case
            if _SAFE.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex
