"""Login, refresh, lock-out and API-token revocation through AuthService, on both stores."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import SecretStr

from conveyor.config import Settings
from conveyor.domain.errors import AlreadyExists, InvalidInput, RateLimited, Unauthenticated
from conveyor.domain.records import Role
from conveyor.security.passwords import PasswordHasher
from conveyor.security.tokens import TokenType
from conveyor.service.auth import AuthService
from conveyor.store import Store
from tests.helpers import wait_until
from tests.security.conftest import cheap_hasher
from tests.security.keys import TEST_SECRET

PASSWORD = "correct horse battery"


def auth_settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {"jwt_secret": SecretStr(TEST_SECRET)}
    base.update(kw)
    return Settings(**base)


@pytest.fixture
def auth(store: Store) -> AuthService:
    return AuthService(
        store,
        auth_settings(login_max_failures=3, login_lockout_seconds=1),
        hasher=cheap_hasher(),
    )


async def test_password_is_stored_hashed_with_argon2(auth: AuthService, store: Store) -> None:
    await auth.create_user("ada", PASSWORD, Role.USER, "acme")
    row = await store.get_user("ada")
    assert row is not None
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash


async def test_login_issues_access_and_refresh(auth: AuthService) -> None:
    await auth.create_user("ada", PASSWORD, "user", "acme")
    pair = await auth.login("ada", PASSWORD)
    p = await auth.authenticate(pair.access_token)
    assert (p.name, p.role, p.tenant, p.scope) == ("ada", Role.USER, "acme", "acme")
    claims = auth.codec.decode(pair.refresh_token)
    assert claims.typ is TokenType.REFRESH
    # A refresh token is not a bearer credential.
    with pytest.raises(Unauthenticated):
        await auth.authenticate(pair.refresh_token)


async def test_wrong_password_and_unknown_user_look_the_same(auth: AuthService) -> None:
    await auth.create_user("ada", PASSWORD, Role.ADMIN)
    with pytest.raises(Unauthenticated) as wrong:
        await auth.login("ada", "not the password")
    with pytest.raises(Unauthenticated) as unknown:
        await auth.login("nobody", "not the password")
    assert wrong.value.message == unknown.value.message


async def test_brute_force_locks_out_even_the_right_password_then_recovers(
    auth: AuthService,
) -> None:
    await auth.create_user("ada", PASSWORD, Role.ADMIN)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await auth.login("ada", "guess")
    with pytest.raises(RateLimited) as locked:
        await auth.login("ada", PASSWORD)
    assert 1 <= locked.value.retry_after <= 1.5

    async def unlocked() -> bool:
        try:
            await auth.login("ada", PASSWORD)
        except RateLimited:
            return False
        return True

    started = time.monotonic()
    assert await wait_until(unlocked, timeout=5, interval=0.1, message="the lock-out to end")
    assert time.monotonic() - started >= 0.5


async def test_failures_from_one_address_do_not_lock_out_another(auth: AuthService) -> None:
    """Issue 19: the throttle is per (username, address), and its delay grows."""
    await auth.create_user("admin", PASSWORD, Role.ADMIN)
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            await auth.login("admin", "guess", "10.0.0.1")
    with pytest.raises(RateLimited) as throttled:
        await auth.login("admin", PASSWORD, "10.0.0.1")
    assert throttled.value.retry_after >= 1
    pair = await auth.login("admin", PASSWORD, "10.0.0.2")  # another address: at once
    assert (await auth.authenticate(pair.access_token)).name == "admin"
    with pytest.raises(RateLimited):
        await auth.login("ADMIN", PASSWORD, "10.0.0.1")  # usernames fold case


async def test_unknown_user_is_throttled_like_a_known_one(auth: AuthService) -> None:
    for name in ("ada", "nobody"):
        if name == "ada":
            await auth.create_user(name, PASSWORD, Role.USER, "acme")
        for _ in range(3):
            with pytest.raises(Unauthenticated):
                await auth.login(name, "guess", "10.0.0.1")
        with pytest.raises(RateLimited):
            await auth.login(name, PASSWORD, "10.0.0.1")


async def test_successful_login_clears_earlier_failures(auth: AuthService) -> None:
    await auth.create_user("ada", PASSWORD, Role.ADMIN)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await auth.login("ada", "guess")
    await auth.login("ada", PASSWORD)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            await auth.login("ada", "guess")
    await auth.login("ada", PASSWORD)  # not locked: the count restarted


async def test_refresh_reads_the_current_user(auth: AuthService) -> None:
    await auth.create_user("ada", PASSWORD, Role.USER, "acme")
    pair = await auth.login("ada", PASSWORD)
    again = await auth.refresh(pair.refresh_token)
    assert (await auth.authenticate(again.access_token)).name == "ada"
    with pytest.raises(Unauthenticated):
        await auth.refresh(pair.access_token)  # an access token cannot refresh


async def test_disabled_user_cannot_refresh_or_log_in(auth: AuthService) -> None:
    await auth.create_user("ada", PASSWORD, Role.USER, "acme")
    pair = await auth.login("ada", PASSWORD)
    await auth.update_user("ada", disabled=True)
    with pytest.raises(Unauthenticated):
        await auth.refresh(pair.refresh_token)
    with pytest.raises(Unauthenticated):
        await auth.login("ada", PASSWORD)


async def test_deleted_or_changed_user_cannot_refresh(auth: AuthService, store: Store) -> None:
    await auth.create_user("ada", PASSWORD, Role.USER, "acme")
    pair = await auth.login("ada", PASSWORD)
    # Changed a second later (whole-second iat): the old refresh token no longer works.
    await wait_until(
        lambda: int(time.time()) > auth.codec.decode(pair.refresh_token).iat.timestamp()
    )
    await auth.update_user("ada", password="a brand new password")
    with pytest.raises(Unauthenticated):
        await auth.refresh(pair.refresh_token)


async def test_api_token_works_until_revoked(auth: AuthService) -> None:
    issued = await auth.create_api_token("billing", Role.WORKER, created_by="admin")
    p = await auth.authenticate(issued.token)
    assert (p.role, p.jti, p.token_type) == (Role.WORKER, issued.record.jti, TokenType.API)
    await auth.revoke_api_token(issued.record.jti)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(issued.token)


async def test_revocation_seen_by_another_server_after_its_cache(store: Store) -> None:
    s = auth_settings(api_token_cache_seconds=0.2)
    a, b = AuthService(store, s, hasher=cheap_hasher()), AuthService(store, s)
    issued = await a.create_api_token("svc", Role.ADMIN)
    await b.authenticate(issued.token)  # cached in b
    await a.revoke_api_token(issued.record.jti)

    async def rejected() -> bool:
        try:
            await b.authenticate(issued.token)
        except Unauthenticated:
            return True
        return False

    await wait_until(rejected, timeout=3, message="the other server to see the revocation")


async def test_concurrent_requests_share_one_revocation_lookup(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = AuthService(store, auth_settings(), hasher=cheap_hasher())
    issued = await auth.create_api_token("svc", Role.ADMIN)
    lookups = 0
    real = store.get_api_token

    async def counted(jti: str) -> Any:
        nonlocal lookups
        lookups += 1
        return await real(jti)

    monkeypatch.setattr(store, "get_api_token", counted)
    principals = await asyncio.gather(*(auth.authenticate(issued.token) for _ in range(20)))
    assert {p.name for p in principals} == {"token:svc"}
    assert lookups == 1


async def test_a_lookup_begun_before_revocation_is_not_cached(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = AuthService(store, auth_settings(api_token_cache_seconds=60), hasher=cheap_hasher())
    issued = await auth.create_api_token("svc", Role.ADMIN)
    started, release = asyncio.Event(), asyncio.Event()
    real = store.get_api_token

    async def slow(jti: str) -> Any:
        record = await real(jti)  # read before the revocation...
        started.set()
        await release.wait()  # ...and returned after it
        return record

    monkeypatch.setattr(store, "get_api_token", slow)
    first = asyncio.create_task(auth.authenticate(issued.token))
    await asyncio.wait_for(started.wait(), 5)
    await auth.revoke_api_token(issued.record.jti)
    release.set()
    await first  # raced the revocation: may pass once
    monkeypatch.setattr(store, "get_api_token", real)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(issued.token)


async def test_token_without_row_is_rejected(auth: AuthService) -> None:
    token, _ = auth.codec.issue(sub="x", role=Role.ADMIN, tenant=None, typ=TokenType.API, ttl=60)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(token)


async def test_user_role_needs_a_tenant(auth: AuthService) -> None:
    with pytest.raises(InvalidInput):
        await auth.create_user("ada", PASSWORD, Role.USER)
    with pytest.raises(InvalidInput):
        await auth.create_api_token("svc", Role.USER)
    # ...and a USER token without a tenant (minted elsewhere with our key) is refused.
    token, _ = auth.codec.issue(
        sub="ada", role=Role.USER, tenant=None, typ=TokenType.ACCESS, ttl=60
    )
    with pytest.raises(Unauthenticated):
        await auth.authenticate(token)


async def test_input_checks(auth: AuthService) -> None:
    with pytest.raises(InvalidInput):
        await auth.create_user("bad name!", PASSWORD, Role.ADMIN)
    with pytest.raises(InvalidInput):
        await auth.create_user("ada", "short", Role.ADMIN)
    with pytest.raises(InvalidInput):
        await auth.create_user("ada", PASSWORD, "root")
    await auth.create_user("ada", PASSWORD, Role.ADMIN)
    with pytest.raises(AlreadyExists):
        await auth.create_user("ada", PASSWORD, Role.ADMIN)


def test_hasher_verifies_and_rejects() -> None:
    h = PasswordHasher()
    stored = h.hash(PASSWORD)
    assert h.verify(stored, PASSWORD)
    assert not h.verify(stored, PASSWORD + "x")
    assert not h.verify(None, PASSWORD)
    assert not h.verify("not-a-hash", PASSWORD)
    assert not h.needs_rehash(stored)
