"""`conveyor user …`, `conveyor token …` and the `conveyor dev` bootstrap, against a real store."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from conveyor.cli.auth import bootstrap_admin, dev_settings
from conveyor.cli.main import main
from conveyor.config import Settings
from conveyor.domain.records import Role
from conveyor.service.auth import AuthService
from conveyor.store import open_store
from tests.security.keys import TEST_SECRET


def _migrate(url: str) -> None:
    async def go() -> None:
        s = open_store(url)
        await s.connect()
        try:
            await s.migrate()
        finally:
            await s.close()

    asyncio.run(go())


@pytest.fixture
def cli_url(sqlite_url: str) -> str:
    _migrate(sqlite_url)
    return sqlite_url


def run(args: list[str], url: str, stdin: str | None = None, **env: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        main,
        [*args, "--store-url", url],
        input=stdin,
        env={"CONVEYOR_JWT_SECRET": TEST_SECRET, **env},
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout, result.stderr


def test_user_create_and_list(cli_url: str) -> None:
    code, out, _ = run(
        ["user", "create", "ada", "--role", "user", "--tenant", "acme", "--password-stdin"],
        cli_url,
        stdin="correct horse battery\n",
    )
    assert code == 0, out
    assert "created ada" in out and "correct horse" not in out
    code, out, _ = run(["user", "list"], cli_url)
    assert code == 0 and out.split() == ["ada", "user", "acme", "active"]
    code, out, err = run(
        ["user", "create", "bob", "--role", "user", "--password-stdin"], cli_url, "x" * 10
    )
    assert code != 0 and "tenant" in out + err


def test_token_create_list_revoke(cli_url: str) -> None:
    code, out, err = run(["token", "create", "--name", "w1", "--role", "worker"], cli_url)
    assert code == 0, out + err
    token = out.strip()
    found = re.search(r"^jti (\S+)  role", err, re.MULTILINE)  # log lines may come first
    assert found, err
    jti = found[1]

    async def who() -> Role:
        store = open_store(cli_url)
        await store.connect()
        try:
            s = Settings(jwt_secret=SecretStr(TEST_SECRET), api_token_cache_seconds=0)
            return (await AuthService(store, s).authenticate(token)).role
        finally:
            await store.close()

    assert asyncio.run(who()) is Role.WORKER
    code, out, _ = run(["token", "list"], cli_url)
    assert code == 0 and jti in out and "active" in out and token not in out
    code, out, _ = run(["token", "revoke", jti], cli_url)
    assert code == 0
    code, out, _ = run(["token", "list"], cli_url)
    assert "revoked" in out
    with pytest.raises(Exception, match="invalid token"):
        asyncio.run(who())


def test_token_create_without_a_key_fails_clearly(cli_url: str) -> None:
    code, out, err = run(
        ["token", "create", "--name", "w", "--role", "worker"], cli_url, CONVEYOR_JWT_SECRET=""
    )
    assert code != 0 and "CONVEYOR_JWT_SECRET" in out + err


def test_server_refuses_to_start_without_a_key(cli_url: str) -> None:
    code, out, err = run(["server", "--port", "1"], cli_url, CONVEYOR_JWT_SECRET="")
    assert code != 0 and "CONVEYOR_JWT_SECRET" in out + err


def test_dev_key_is_generated_once_and_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/data/conveyor.db"
    first = dev_settings(Settings(store_url=url))
    key_file = tmp_path / "data" / "jwt-secret"
    assert first.jwt_secret is not None and len(first.jwt_secret.get_secret_value()) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = dev_settings(Settings(store_url=url))
    assert again.jwt_secret == first.jwt_secret
    configured = dev_settings(Settings(store_url=url, jwt_secret=SecretStr(TEST_SECRET)))
    assert configured.jwt_secret is not None
    assert configured.jwt_secret.get_secret_value() == TEST_SECRET


async def test_dev_bootstrap_creates_admin_once(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    await store.connect()
    try:
        await store.migrate()
        settings = Settings(store_url=sqlite_url, jwt_secret=SecretStr(TEST_SECRET))
        password = await bootstrap_admin(store, settings)
        assert password is not None and len(password) >= 16
        admin = await store.get_user("admin")
        assert admin is not None and admin.role is Role.ADMIN
        assert password not in admin.password_hash
        pair = await AuthService(store, settings).login("admin", password)
        assert pair.access_token
        assert await bootstrap_admin(store, settings) is None  # never a second time
    finally:
        await store.close()
