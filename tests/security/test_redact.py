"""The log redaction net: secrets never reach a rendered log line."""

from __future__ import annotations

import io
import json
import sys

import structlog

from conveyor.runtime.logs import configure_logging
from conveyor.security.redact import REDACTED, redact_secrets

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEifQ.c2lnbmF0dXJl"


def test_secret_keys_and_tokens_are_masked() -> None:
    out = redact_secrets(
        None,
        "info",
        {
            "event": "calling billing",
            "password": "hunter2-hunter2",
            "api_key": "k-123",
            "headers": {"Authorization": "Bearer abc.def", "accept": "json"},
            "note": f"retry with Bearer {JWT} later",
            "raw": f"token={JWT}",
            "count": 3,
        },
    )
    assert out["password"] == REDACTED and out["api_key"] == REDACTED
    assert out["headers"] == {"Authorization": REDACTED, "accept": "json"}
    assert JWT not in out["note"] and JWT not in out["raw"]
    assert out["count"] == 3 and out["event"] == "calling billing"


def test_configured_logging_redacts() -> None:
    buf = io.StringIO()
    old = sys.stderr
    sys.stderr = buf
    try:
        configure_logging("INFO", "json")
        structlog.get_logger("t").info("login", password="hunter2-hunter2", detail=f"Bearer {JWT}")
    finally:
        sys.stderr = old
        structlog.reset_defaults()
    line = json.loads(buf.getvalue().strip().splitlines()[-1])
    assert "hunter2" not in buf.getvalue() and JWT not in buf.getvalue()
    assert line["password"] == REDACTED


def test_secrets_written_into_free_text_are_masked() -> None:
    event = {
        "event": "connect failed: password=hunter2 host=db",
        "error": "could not connect to postgresql://app:s3cr3t@db:5432/jobs",
        "detail": "api_key='top secret', token: abc123",
    }
    out = redact_secrets(None, "error", dict(event))
    text = repr(out)
    for secret in ("hunter2", "s3cr3t", "top secret", "abc123"):
        assert secret not in text
    assert out["event"] == "connect failed: password=[redacted] host=db"
    assert out["error"] == "could not connect to postgresql://app:[redacted]@db:5432/jobs"
