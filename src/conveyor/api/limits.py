"""Request bodies: a size limit (413), a JSON-only content type (415), and JSON text we read
one way only (400: UTF-8 without a byte order mark, no key twice in an object), checked by the
front gate before any route runs, so an oversized, mistyped or ambiguous body never reaches
parsing, let alone the store."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope

from conveyor.api.errors import problem
from conveyor.domain.limits import json_text_problem

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class BodyRefused(Exception):
    """The body was not accepted; `response` says why (None: the client went away)."""

    def __init__(self, response: Response | None) -> None:
        super().__init__()
        self.response = response


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """The whole request body, read within `max_bytes` (so the limit holds for chunked uploads
    too), or BodyRefused: 413 over the limit, 415 for a body that is not JSON."""
    content_type = b""
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None
    if length is not None and length > max_bytes:
        raise BodyRefused(_too_large(max_bytes))
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            raise BodyRefused(None)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise BodyRefused(_too_large(max_bytes))
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    if body and not _is_json(content_type):
        shown = content_type.decode("latin-1") or "none"
        raise BodyRefused(
            problem(
                415,
                "unsupported_media_type",
                "Unsupported media type",
                f"request bodies must be application/json (got {shown})",
                field="Content-Type",
            )
        )
    if body:
        # Python's json (FastAPI's routes) would guess UTF-16/32 and skip a BOM, and every
        # parser here keeps the last of duplicate keys where others keep the first or refuse.
        reason = json_text_problem(body)
        if reason is not None:
            raise BodyRefused(
                problem(
                    400, "malformed_json", "Malformed JSON", f"request body is not JSON: {reason}"
                )
            )
    return body


def _too_large(max_bytes: int) -> Response:
    return problem(
        413,
        "payload_too_large",
        "Payload too large",
        f"request body is over the {max_bytes} byte limit",
    )
