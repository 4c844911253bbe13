"""Users, API tokens and worker meta: the store side of auth, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.domain.errors import AlreadyExists, TokenNotFound, UserNotFound
from conveyor.domain.records import ApiToken, Role, User, WorkerInfo
from conveyor.store import Store
from tests.helpers import assert_dt_close, utcnow

# -- users --------------------------------------------------------------------------------


async def test_create_and_get_user(store: Store) -> None:
    before = utcnow()
    created = await store.create_user(
        User(username="ada", role=Role.USER, password_hash="$argon2id$x", tenant="acme")
    )
    assert (created.username, created.role, created.tenant) == ("ada", Role.USER, "acme")
    assert created.password_hash == "$argon2id$x"
    assert created.disabled is False
    assert created.created_at is not None and created.created_at >= before - timedelta(seconds=1)
    assert await store.get_user("ada") == created
    assert await store.get_user("nobody") is None


async def test_duplicate_user_is_refused_and_keeps_the_first(store: Store) -> None:
    await store.create_user(User(username="ada", role=Role.ADMIN, password_hash="h1"))
    with pytest.raises(AlreadyExists):
        await store.create_user(User(username="ada", role=Role.USER, password_hash="h2"))
    kept = await store.get_user("ada")
    assert kept is not None and (kept.role, kept.password_hash) == (Role.ADMIN, "h1")


async def test_list_users_in_name_order(store: Store) -> None:
    for name in ("carol", "alice", "bob"):
        await store.create_user(User(username=name, role=Role.WORKER, password_hash="h"))
    assert [u.username for u in await store.list_users()] == ["alice", "bob", "carol"]


async def test_set_user_replaces_mutable_fields(store: Store) -> None:
    u = await store.create_user(User(username="ada", role=Role.USER, password_hash="h", tenant="a"))
    u.role, u.tenant, u.password_hash, u.disabled = Role.ADMIN, None, "h2", True
    saved = await store.set_user(u)
    assert (saved.role, saved.tenant, saved.password_hash, saved.disabled) == (
        Role.ADMIN,
        None,
        "h2",
        True,
    )
    assert await store.get_user("ada") == saved
    with pytest.raises(UserNotFound):
        await store.set_user(User(username="ghost", role=Role.USER, password_hash="h"))


# -- API tokens ---------------------------------------------------------------------------


async def test_api_token_round_trip_and_revoke(store: Store) -> None:
    expires = utcnow() + timedelta(days=30)
    created = await store.create_api_token(
        ApiToken(
            jti="j1",
            name="billing-worker",
            role=Role.WORKER,
            expires_at=expires,
            tenant=None,
            created_by="admin",
        )
    )
    assert (created.jti, created.name, created.role, created.created_by) == (
        "j1",
        "billing-worker",
        Role.WORKER,
        "admin",
    )
    assert_dt_close(created.expires_at, expires, tol=0.001)
    assert created.revoked_at is None
    assert await store.get_api_token("j1") == created
    assert await store.get_api_token("missing") is None

    revoked = await store.revoke_api_token("j1")
    assert revoked.revoked_at is not None
    again = await store.revoke_api_token("j1")
    assert again.revoked_at == revoked.revoked_at  # the first revocation time is kept
    fetched = await store.get_api_token("j1")
    assert fetched is not None and fetched.revoked_at == revoked.revoked_at
    with pytest.raises(TokenNotFound):
        await store.revoke_api_token("missing")


async def test_api_token_duplicate_jti_refused(store: Store) -> None:
    t = ApiToken(jti="j1", name="a", role=Role.USER, tenant="t", expires_at=utcnow())
    await store.create_api_token(t)
    with pytest.raises(AlreadyExists):
        await store.create_api_token(t)


async def test_list_api_tokens_oldest_first_with_revoked(store: Store) -> None:
    for jti in ("a", "b", "c"):
        await store.create_api_token(
            ApiToken(jti=jti, name=jti, role=Role.WORKER, expires_at=utcnow())
        )
    await store.revoke_api_token("b")
    listed = await store.list_api_tokens()
    assert [t.jti for t in listed] == ["a", "b", "c"]
    assert [t.revoked_at is not None for t in listed] == [False, True, False]


# -- worker meta on heartbeat ---------------------------------------------------------------


async def test_touch_worker_can_replace_meta(store: Store) -> None:
    now = utcnow()
    info = WorkerInfo(
        id="w1",
        hostname="h",
        pid=1,
        queues=["default"],
        concurrency=2,
        started_at=now,
        last_seen_at=now,
        meta={"types": ["a"]},
    )
    await store.register_worker(info)
    await store.touch_worker("w1", 1)
    (w,) = await store.list_workers()
    assert w.meta == {"types": ["a"]} and w.running == 1
    await store.touch_worker("w1", 2, {"types": ["a"], "breakers": {"a": {"state": "open"}}})
    (w,) = await store.list_workers()
    assert w.meta == {"types": ["a"], "breakers": {"a": {"state": "open"}}}
    assert w.running == 2
