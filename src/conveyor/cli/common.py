"""Helpers every command shares: how a command runs its coroutine, and its settings."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

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
