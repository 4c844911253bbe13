"""Helpers every command shares: how a command runs its coroutine, its settings, and the
uvicorn server that commands embed next to other loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import uvicorn

from conveyor.config import Settings

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    return uvloop.run(coro)


def settings_for(store_url: str | None, **overrides: Any) -> Settings:
    base = Settings()
    update = {k: v for k, v in overrides.items() if v is not None}
    if store_url:
        update["store_url"] = store_url
    return base.model_copy(update=update)


def http_options(settings: Settings, *, access_log: bool) -> dict[str, Any]:
    """uvicorn options of `conveyor server`, HTTP alone or beside gRPC."""
    return {
        "access_log": access_log,
        "server_header": False,  # don't advertise the server software
        "log_level": settings.log_level.lower(),
        "log_config": None,
    }


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its host command, which stops it with the rest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
