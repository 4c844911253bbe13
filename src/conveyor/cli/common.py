"""Helpers every command shares: how a command runs its coroutine, its settings, and the
uvicorn server that commands embed next to other loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import click
import orjson
import uvicorn

from conveyor.app import App
from conveyor.config import Settings
from conveyor.domain.errors import ConveyorError

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(coro)
    return uvloop.run(coro)


store_option = click.option(
    "--store-url",
    envvar="CONVEYOR_STORE_URL",
    default=None,
    help="sqlite:///path.db or postgresql://… (env CONVEYOR_STORE_URL)",
)


def service_call(store_url: str | None, fn: Callable[[App], Awaitable[T]]) -> T:
    """Run `fn` on an App over the store (the service calls the API makes); a ConveyorError
    becomes the command's one-line error."""

    async def go() -> T:
        app = App(settings_for(store_url).store_url)
        async with app:
            return await fn(app)

    try:
        return run_async(go())
    except ConveyorError as exc:
        raise click.ClickException(exc.message) from exc


def json_arg(value: str, name: str) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from exc


def settings_for(store_url: str | None, **overrides: Any) -> Settings:
    base = Settings()
    update = {k: v for k, v in overrides.items() if v is not None}
    if store_url:
        update["store_url"] = store_url
    return base.model_copy(update=update)


def layered_settings(base: Settings, store_url: str | None, **flags: Any) -> Settings:
    """`base` (an App's own Settings) under what the environment sets explicitly, under the
    command's flags: flags > CONVEYOR_* environment > the App's Settings > defaults."""
    env = Settings()
    update = {name: getattr(env, name) for name in env.model_fields_set}
    update.update({k: v for k, v in flags.items() if v is not None})
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
