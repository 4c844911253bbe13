"""Which X-Request-ID a request gets (conveyor.api.requestid)."""

from __future__ import annotations

import pytest

from conveyor.api.requestid import MAX_LENGTH, request_id


def test_a_safe_caller_id_is_kept() -> None:
    given = "nginx-3f2a:9.1_x"
    assert request_id([(b"accept", b"*/*"), (b"x-request-id", given.encode())]) == given


@pytest.mark.parametrize(
    "bad",
    [b"", b"has space", b"new\nline", b'{"json":1}', b"x" * (MAX_LENGTH + 1), "é".encode()],
)
def test_an_unsafe_caller_id_is_replaced(bad: bytes) -> None:
    made = request_id([(b"x-request-id", bad)])
    assert made.encode() != bad
    assert len(made) == 32 and int(made, 16) >= 0


def test_each_request_without_one_gets_its_own() -> None:
    assert request_id([]) != request_id([])
