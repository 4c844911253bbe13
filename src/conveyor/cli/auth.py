"""`conveyor user …` and `conveyor token …`, and the auth bootstrap of `conveyor dev`.

These talk to the store directly (like `conveyor queue set`): whoever can reach the store is
already trusted with everything in it, so the CLI needs no token of its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from pydantic import SecretStr

from conveyor.cli.common import run_async, settings_for, store_option
from conveyor.config import Settings
from conveyor.domain.errors import ConveyorError
from conveyor.domain.records import Role
from conveyor.service.startup import ensure_migrated
from conveyor.store import Store, open_store

if TYPE_CHECKING:  # imported where used: `conveyor worker` loads this module but needs neither
    from conveyor.service.auth import AuthService

T = TypeVar("T")
ROLES = click.Choice([r.value for r in Role])
DEV_KEY_FILE = "jwt-secret"


def _call(store_url: str | None, fn: Callable[[AuthService], Awaitable[T]]) -> T:
    from conveyor.service.auth import AuthService

    settings = with_dev_key(settings_for(store_url))

    async def go() -> T:
        store = open_store(settings.store_url)
        await store.connect()
        try:
            await ensure_migrated(store)
            return await fn(AuthService(store, settings))
        finally:
            await store.close()

    try:
        return run_async(go())
    except ConveyorError as exc:
        raise click.ClickException(exc.message) from exc


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise click.UsageError("no terminal to prompt on: pass the password with --password-stdin")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@click.group()
def user() -> None:
    """Accounts that log in with a password (POST /v1/auth/login)."""


@user.command("create")
@click.argument("username")
@click.option("--role", type=ROLES, required=True)
@click.option("--tenant", default=None, help="required for role user: the tenant it may see")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@store_option
def user_create(
    username: str, role: str, tenant: str | None, password_stdin: bool, store_url: str | None
) -> None:
    """Create USERNAME (prompts for the password unless --password-stdin)."""
    password = _read_password(password_stdin)
    u = _call(store_url, lambda a: a.create_user(username, password, role, tenant))
    click.echo(f"created {u.username} (role {u.role.value}, tenant {u.tenant or '-'})")


@user.command("list")
@store_option
def user_list(store_url: str | None) -> None:
    for u in _call(store_url, lambda a: a.list_users()):
        state = "disabled" if u.disabled else "active"
        click.echo(f"{u.username}\t{u.role.value}\t{u.tenant or '-'}\t{state}")


@user.command("disable")
@click.argument("username")
@store_option
def user_disable(username: str, store_url: str | None) -> None:
    """Stop USERNAME from logging in or refreshing (access tokens out expire on their own)."""
    _call(store_url, lambda a: a.update_user(username, disabled=True))
    click.echo(f"disabled {username}")


@user.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@store_option
def user_set_password(username: str, password_stdin: bool, store_url: str | None) -> None:
    """Set USERNAME's password (prompts unless --password-stdin), e.g. a lost `admin` one."""
    password = _read_password(password_stdin)
    _call(store_url, lambda a: a.update_user(username, password=password))
    click.echo(f"password set for {username}")


@click.group()
def token() -> None:
    """Long-lived API tokens for services and workers."""


@token.command("create")
@click.option("--name", required=True, help="what uses it, e.g. billing-worker")
@click.option("--role", type=ROLES, required=True)
@click.option("--tenant", default=None, help="required for role user")
@click.option("--ttl", "ttl_days", type=float, default=None, help="days (default from settings)")
@store_option
def token_create(
    name: str, role: str, tenant: str | None, ttl_days: float | None, store_url: str | None
) -> None:
    """Create a token and print it once: it is not stored and cannot be shown again."""
    issued = _call(
        store_url,
        lambda a: a.create_api_token(name, role, tenant, ttl_days=ttl_days, created_by="cli"),
    )
    r = issued.record
    click.echo(f"jti {r.jti}  role {r.role.value}  expires {r.expires_at.isoformat()}", err=True)
    click.echo(issued.token)


@token.command("list")
@store_option
def token_list(store_url: str | None) -> None:
    now = datetime.now(UTC)
    for t in _call(store_url, lambda a: a.list_api_tokens()):
        if t.revoked_at is not None:
            state = "revoked"
        elif t.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        click.echo(
            f"{t.jti}\t{t.name}\t{t.role.value}\t{t.tenant or '-'}\t{state}\t"
            f"expires {t.expires_at.isoformat()}"
        )


@token.command("revoke")
@click.argument("jti")
@store_option
def token_revoke(jti: str, store_url: str | None) -> None:
    _call(store_url, lambda a: a.revoke_api_token(jti))
    click.echo(f"revoked {jti}")


# -- conveyor dev -----------------------------------------------------------------------------


def _needs_key(settings: Settings) -> bool:
    return settings.auth_enabled and settings.jwt_algorithm == "HS256" and not settings.jwt_secret


def _dev_key_path(settings: Settings) -> Path:
    base = Path("conveyor-data")
    if settings.store_url.startswith("sqlite:///"):
        base = Path(settings.store_url[len("sqlite:///") :].split("?", 1)[0]).expanduser().parent
    return base / DEV_KEY_FILE


def with_dev_key(settings: Settings) -> Settings:
    """CLI commands on a `conveyor dev` store sign with the key `dev` keeps beside it (when no
    key is configured), so `conveyor token create` works in the dev setup. Never makes one."""
    if not _needs_key(settings) or not settings.store_url.startswith("sqlite:///"):
        return settings
    path = _dev_key_path(settings)
    if not path.is_file():
        return settings
    return _key_from(path, settings)


def _key_from(path: Path, settings: Settings) -> Settings:
    secret = path.read_text(encoding="utf-8").strip()
    return settings.model_copy(update={"jwt_secret": SecretStr(secret)})


def dev_settings(settings: Settings) -> Settings:
    """Give `conveyor dev` a signing key when none is configured: a random one, kept in a
    0600 file beside the SQLite database so tokens survive a restart. Never for `server`."""
    if not _needs_key(settings):
        return settings
    path = _dev_key_path(settings)
    if not path.exists():
        from conveyor.security.tokens import generate_secret

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(generate_secret() + "\n")
    return _key_from(path, settings)


async def bootstrap_admin(store: Store, settings: Settings) -> str | None:
    """First start of `conveyor dev`: create `admin` with a random password and return it (to
    print once); None when any user exists already. Only the argon2 hash is stored."""
    if not settings.auth_enabled or await store.list_users():
        return None
    from conveyor.service.auth import AuthService, generate_password

    password = generate_password()
    await AuthService(store, settings).create_user("admin", password, Role.ADMIN)
    return password


def login_help(base_url: str, password: str | None) -> str:
    if password is None:
        return (
            "  auth: on. Log in with an existing user: "
            f"curl -X POST {base_url}/v1/auth/login -H 'content-type: application/json' "
            '-d \'{"username": "…", "password": "…"}\''
        )
    return (
        "  auth: on. Created user 'admin' with password (shown once, not stored):\n"
        f"      {password}\n"
        f"  log in: curl -X POST {base_url}/v1/auth/login -H 'content-type: application/json' "
        f'-d \'{{"username": "admin", "password": "{password}"}}\'\n'
        "  then send: Authorization: Bearer <access_token>"
    )
