"""Structured logging: JSON lines in production, readable lines in `conveyor dev`.

Every line goes through the same processors whoever logs it: Conveyor's structlog loggers, and
the standard library's `logging` (uvicorn, asyncpg, grpc, Python warnings, conveyor.store.*),
whose records the root handler renders with structlog's ProcessorFormatter. So in JSON mode
each line is one JSON object (a traceback is the `exception` field of its line, not lines of
its own), and secret redaction covers third-party messages too.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

import structlog

from conveyor.security.redact import redact_secrets


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (as logging.lastResort does), not to the
    stream that was current when logging was configured."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


class _StderrLogger:
    """structlog's WriteLogger, but writing to whatever sys.stderr is at the time, like
    _StderrHandler: WriteLoggerFactory(file=sys.stderr) keeps the stream current when logging
    was configured, so a test's capture (closed at its end) or a redirect_stderr() around
    `App.open` would have taken every later line. One write per line (message and newline
    together), under a lock, so lines from threads and the root handler never interleave."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            stream = sys.stderr
            stream.write(message + "\n")
            stream.flush()

    log = debug = info = warn = warning = msg
    err = error = critical = exception = fatal = failure = msg


_STDERR_LOGGER = _StderrLogger()


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _STDERR_LOGGER


def _keep(_logger: Any, _method: str, event: Any) -> Any:
    return event


def _level(level: str) -> int:
    return logging.getLevelNamesMapping().get(level.upper(), logging.INFO)


def _renderer(fmt: str) -> structlog.types.Processor:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    return structlog.processors.JSONRenderer()


def _exc_info(fmt: str) -> structlog.types.Processor:
    """JSON: a traceback becomes the `exception` string of its event (one line once
    rendered); the console renderer prints exc_info itself, readably."""
    return structlog.processors.format_exc_info if fmt != "console" else _keep


_TIMESTAMPER = structlog.processors.TimeStamper(fmt="iso", utc=True)


def _configure_structlog(level: str, fmt: str, *, cache: bool = True) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _TIMESTAMPER,
            _exc_info(fmt),
            redact_secrets,  # last before rendering: also covers formatted tracebacks
            _renderer(fmt),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_level(level)),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=cache,
    )


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog and the standard library's root logger (replacing its handlers:
    a process entry point owns its logging)."""
    _configure_structlog(level, fmt)
    exc_info = _exc_info(fmt)
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # A record's message (with its %-args applied) becomes the event; extra= fields are
            # left out, so nothing unredacted rides along.
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                _TIMESTAMPER,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                exc_info,
                redact_secrets,
                _renderer(fmt),
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_level(level))
    logging.captureWarnings(True)  # warnings.warn() output: a log line like any other


def adopt_logging(level: str = "INFO", fmt: str = "json") -> None:
    """For Conveyor inside a program that did not configure structlog (an `App` in a script):
    Conveyor's own lines at `level`, in `fmt`, on stderr. Left alone, structlog's defaults
    print every debug line (one per job run) in console format, which also cost a worker more
    CPU than the jobs themselves (a no-op drain ran 3x slower). structlog's configuration is
    global, so the program's own structlog loggers, if it uses them unconfigured, get the
    same output. The standard library's logging stays the program's; a program that
    configured structlog keeps its configuration, and one that does so later (or captures
    logs in its tests) takes over: loggers are not cached."""
    if not structlog.is_configured():
        _configure_structlog(level, fmt, cache=False)
