"""Auth, rate limits, backpressure and the other limits over HTTP, with auth on."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
import jwt
import orjson
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from conveyor.api import create_app
from conveyor.domain.errors import ConfigError
from conveyor.domain.records import Role, WorkerInfo
from conveyor.security.tokens import TokenCodec, TokenType
from conveyor.store import Store
from tests.conftest import DEAD_REDIS_URL
from tests.helpers import utcnow, wait_until
from tests.security.conftest import (
    AppFactory,
    access_token,
    bearer,
    secure_settings,
)
from tests.security.keys import TEST_SECRET, ec_pem, rsa_pem

PASSWORD = "correct horse battery"


async def _count(store: Store) -> int:
    return sum(sum(s.values()) for s in (await store.count_by_queue_status()).values())


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def assert_401(resp: Any) -> None:
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert resp.json()["code"] == "unauthenticated"


def login_body(username: str = "ada", password: str = PASSWORD) -> dict[str, str]:
    return {"username": username, "password": password}


# -- logging in ------------------------------------------------------------------------------


async def test_login_then_use_the_access_token(make_api: AppFactory) -> None:
    app, api = await make_api()
    await app.state.auth.create_user("ada", PASSWORD, Role.USER, "acme")
    resp = await api.post("/v1/auth/login", json=login_body())
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"
    pair = resp.json()
    assert pair["token_type"] == "bearer" and pair["expires_in"] == 900
    me = await api.get("/v1/auth/me", headers=bearer(pair["access_token"]))
    assert me.json() == {"name": "ada", "role": "user", "tenant": "acme", "token_type": "access"}
    new = await api.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert new.status_code == 200
    assert (await api.get("/v1/auth/me", headers=bearer(new.json()["access_token"]))).is_success
    # the refresh token is not a bearer credential
    assert_401(await api.get("/v1/auth/me", headers=bearer(pair["refresh_token"])))


async def test_wrong_password_is_401(make_api: AppFactory) -> None:
    app, api = await make_api()
    await app.state.auth.create_user("ada", PASSWORD, Role.ADMIN)
    assert_401(await api.post("/v1/auth/login", json=login_body(password="nope1234")))


async def test_brute_force_locks_out_then_recovers(make_api: AppFactory) -> None:
    app, api = await make_api(login_max_failures=3, login_lockout_seconds=1)
    await app.state.auth.create_user("ada", PASSWORD, Role.ADMIN)
    for _ in range(3):
        assert_401(await api.post("/v1/auth/login", json=login_body(password="guess-guess")))
    locked = await api.post("/v1/auth/login", json=login_body())
    assert locked.status_code == 429, locked.text
    assert 1 <= int(locked.headers["Retry-After"]) <= 2
    assert "access_token" not in locked.text

    async def works() -> bool:
        return (await api.post("/v1/auth/login", json=login_body())).status_code == 200

    await wait_until(works, timeout=5, interval=0.2, message="the lock-out to end")


async def test_failed_logins_from_one_address_do_not_lock_out_another(
    make_api: AppFactory,
) -> None:
    """Issue 19: bad passwords for admin from address A must not lock admin out elsewhere.
    A is throttled (429 + Retry-After, even with the right password); B logs in at once."""
    app, _ = await make_api()  # the defaults: login_max_failures=5, delays capped at 300 s
    await app.state.auth.create_user("admin", PASSWORD, Role.ADMIN)

    def client(ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://test")

    body = login_body(username="admin")
    async with client("10.0.0.1") as a, client("10.0.0.2") as b:
        for _ in range(6):
            r = await a.post(
                "/v1/auth/login", json=login_body(username="admin", password="guess-1")
            )
            assert r.status_code in (401, 429), r.text
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        at_b = await b.post("/v1/auth/login", json=body)
        assert at_b.status_code == 200, at_b.text
        assert "access_token" in at_b.json()
        at_a = await a.post("/v1/auth/login", json=body)
        assert at_a.status_code == 429, at_a.text
        assert 1 <= int(at_a.headers["Retry-After"]) <= 300
        assert "access_token" not in at_a.text


async def test_refresh_of_a_disabled_user_is_401(make_api: AppFactory) -> None:
    app, api = await make_api()
    await app.state.auth.create_user("ada", PASSWORD, Role.USER, "acme")
    pair = (await api.post("/v1/auth/login", json=login_body())).json()
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    resp = await api.patch("/v1/users/ada", json={"disabled": True}, headers=admin)
    assert resp.status_code == 200 and resp.json()["disabled"] is True
    assert "password" not in resp.text  # the hash is never shown
    assert_401(await api.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}))


# -- token tampering over HTTP ---------------------------------------------------------------


def _bad_tokens(settings: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "iss": "conveyor",
        "sub": "mallory",
        "role": "admin",
        "tenant": None,
        "typ": "access",
        "jti": "j",
        "iat": now,
        "exp": now + 60,
    }
    header, _payload, sig = access_token(settings, Role.USER, "acme").split(".")
    expired, _ = TokenCodec.from_settings(settings, clock=lambda: time.time() - 3600).issue(
        sub="ada", role=Role.ADMIN, tenant=None, typ=TokenType.ACCESS, ttl=60
    )
    rs = TokenCodec.from_settings(
        secure_settings(
            "sqlite:///x.db", jwt_algorithm="RS256", jwt_private_key=SecretStr(rsa_pem())
        )
    )
    rs_token, _ = rs.issue(sub="m", role=Role.ADMIN, tenant=None, typ=TokenType.ACCESS, ttl=60)
    missing = {k: v for k, v in claims.items() if k != "jti"}
    return {
        "expired": expired,
        "wrong_signature": jwt.encode(claims, "another-secret-" + "x" * 32, algorithm="HS256"),
        "tampered_payload": f"{header}.{_b64(claims)}.{sig}",
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "alg_switched_rs256": rs_token,
        "missing_claim": jwt.encode(missing, TEST_SECRET, algorithm="HS256"),
        "not_a_jwt": "hello",
    }


BAD_TOKENS = [
    "expired",
    "wrong_signature",
    "tampered_payload",
    "alg_none",
    "alg_switched_rs256",
    "missing_claim",
    "not_a_jwt",
]


@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_bad_tokens_are_401_and_write_nothing(
    case: str, make_api: AppFactory, store: Store
) -> None:
    app, api = await make_api()
    token = _bad_tokens(app.state.settings)[case]
    before = await _count(store)
    assert_401(await api.post("/v1/jobs", json={"type": "t"}, headers=bearer(token)))
    assert_401(await api.get("/v1/jobs", headers=bearer(token)))
    assert await _count(store) == before


async def test_hs256_token_to_rs256_and_es256_servers(make_api: AppFactory) -> None:
    hs_token = access_token(secure_settings("sqlite:///x.db"), Role.ADMIN)
    for kw in (
        {"jwt_algorithm": "RS256", "jwt_private_key": SecretStr(rsa_pem())},
        {"jwt_algorithm": "ES256", "jwt_private_key": SecretStr(ec_pem())},
    ):
        app, api = await make_api(**kw)
        assert_401(await api.get("/v1/jobs", headers=bearer(hs_token)))
        own = access_token(app.state.settings, Role.ADMIN)
        assert (await api.get("/v1/jobs", headers=bearer(own))).status_code == 200


async def test_missing_or_malformed_authorization(make_api: AppFactory) -> None:
    _, api = await make_api()
    assert_401(await api.get("/v1/jobs"))
    assert_401(await api.get("/v1/jobs", headers={"Authorization": "Basic YWRhOnB3"}))
    assert_401(await api.get("/v1/jobs", headers={"Authorization": "Bearer"}))
    assert (await api.get("/healthz")).status_code == 200  # public routes need no token


async def test_revoked_api_token_is_401(make_api: AppFactory) -> None:
    app, api = await make_api(api_token_cache_seconds=0)
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    made = await api.post("/v1/tokens", json={"name": "w", "role": "worker"}, headers=admin)
    assert made.status_code == 201, made.text
    token, jti = made.json()["token"], made.json()["jti"]
    assert (await api.get("/v1/auth/me", headers=bearer(token))).json()["role"] == "worker"
    listed = (await api.get("/v1/tokens", headers=admin)).json()["tokens"]
    assert [t["jti"] for t in listed] == [jti] and "token" not in listed[0]
    assert (await api.delete(f"/v1/tokens/{jti}", headers=admin)).status_code == 200
    assert_401(await api.get("/v1/auth/me", headers=bearer(token)))


async def test_user_role_token_needs_a_tenant(make_api: AppFactory) -> None:
    app, api = await make_api()
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    resp = await api.post("/v1/tokens", json={"name": "svc", "role": "user"}, headers=admin)
    assert resp.status_code == 422 and resp.json()["field"] == "tenant"


# -- rate limits -----------------------------------------------------------------------------


async def test_rate_limit_per_principal_on_real_redis(
    make_api: AppFactory, store: Store, redis_url: str, key_prefix: str
) -> None:
    app, api = await make_api(
        redis_url=redis_url, rate_limit_key_prefix=key_prefix, rate_limit_user="3/minute"
    )
    user = bearer(access_token(app.state.settings, Role.USER, "acme"))
    other = bearer(access_token(app.state.settings, Role.USER, "acme", name="bob"))
    for i in range(3):
        r = await api.post("/v1/jobs", json={"type": "t"}, headers=user)
        assert r.status_code == 201
        assert r.headers["RateLimit-Limit"] == "3"
        assert r.headers["RateLimit-Remaining"] == str(2 - i)
        assert 0 < int(r.headers["RateLimit-Reset"]) <= 60
    before = await _count(store)
    refused = await api.post("/v1/jobs", json={"type": "t"}, headers=user)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert await _count(store) == before  # the refused submit wrote nothing
    assert (await api.post("/v1/jobs", json={"type": "t"}, headers=other)).status_code == 201


async def test_anonymous_limit_is_per_ip_before_login(make_api: AppFactory) -> None:
    _, api = await make_api(rate_limit_anonymous="2/minute")
    body = login_body("x", "y-y-y-y-y")
    assert (await api.post("/v1/auth/login", json=body)).status_code == 401
    assert (await api.post("/v1/auth/login", json=body)).status_code == 401
    third = await api.post("/v1/auth/login", json=body)
    assert third.status_code == 429 and "Retry-After" in third.headers
    assert (await api.get("/healthz")).status_code == 200  # probes are never limited


async def test_redis_down_fail_open(make_api: AppFactory) -> None:
    app, api = await make_api(
        redis_url=DEAD_REDIS_URL, rate_limit_fail_open=True, rate_limit_user="1/minute"
    )
    user = bearer(access_token(app.state.settings, Role.USER, "acme"))
    for _ in range(3):
        r = await api.post("/v1/jobs", json={"type": "t"}, headers=user)
        assert r.status_code == 201
        assert "RateLimit-Limit" not in r.headers


async def test_redis_down_fail_closed(make_api: AppFactory, store: Store) -> None:
    app, api = await make_api(redis_url=DEAD_REDIS_URL, rate_limit_fail_open=False)
    user = bearer(access_token(app.state.settings, Role.USER, "acme"))
    r = await api.post("/v1/jobs", json={"type": "t"}, headers=user)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "rate_limiter_unavailable"
    assert int(r.headers["Retry-After"]) >= 1
    assert await _count(store) == 0
    assert (await api.get("/readyz")).status_code == 200  # probes are not limited


# -- backpressure ----------------------------------------------------------------------------


async def test_full_queue_answers_429_and_writes_nothing(
    make_api: AppFactory, store: Store
) -> None:
    app, api = await make_api()
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    r = await api.patch("/v1/queues/small", json={"max_depth": 2}, headers=admin)
    assert r.status_code == 200, r.text
    for _ in range(2):
        ok = await api.post("/v1/jobs", json={"type": "t", "queue": "small"}, headers=admin)
        assert ok.status_code == 201, ok.text
    full = await api.post("/v1/jobs", json={"type": "t", "queue": "small"}, headers=admin)
    assert full.status_code == 429, full.text
    assert full.json()["code"] == "queue_full"
    assert int(full.headers["Retry-After"]) >= 1
    assert (await store.count_by_queue_status())["small"] == {"queued": 2}


async def test_batch_to_a_nearly_full_queue_is_all_or_nothing(
    make_api: AppFactory, store: Store
) -> None:
    app, api = await make_api()
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    await api.patch("/v1/queues/small", json={"max_depth": 3}, headers=admin)
    await api.post("/v1/jobs", json={"type": "t", "queue": "small"}, headers=admin)
    batch = {"jobs": [{"type": "t", "queue": "small"} for _ in range(3)]}
    r = await api.post("/v1/jobs/batch", json=batch, headers=admin)
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert (await store.count_by_queue_status())["small"] == {"queued": 1}


# -- other limits ----------------------------------------------------------------------------


async def test_size_limits(make_api: AppFactory, store: Store) -> None:
    app, api = await make_api(max_payload_bytes=100, api_max_body_bytes=10_000)
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    big = {"type": "t", "payload": {"x": "y" * 200}}
    r = await api.post("/v1/jobs", json=big, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "payload"
    huge = {"type": "t", "payload": {"x": "y" * 20_000}}
    assert (await api.post("/v1/jobs", json=huge, headers=admin)).status_code == 413
    many = {"jobs": [{"type": "t"}] * 1001}
    assert (await api.post("/v1/jobs/batch", json=many, headers=admin)).status_code in (413, 422)
    page = await api.get("/v1/jobs", params={"limit": 501}, headers=admin)
    assert page.status_code == 422
    assert await _count(store) == 0


async def test_long_poll_is_capped_by_the_server(make_api: AppFactory) -> None:
    app, api = await make_api(api_max_wait=0.2)
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    job = (await api.post("/v1/jobs", json={"type": "t"}, headers=admin)).json()
    started = time.monotonic()
    r = await api.get(f"/v1/jobs/{job['id']}", params={"wait": 60}, headers=admin)
    assert r.status_code == 200 and time.monotonic() - started < 2


async def test_security_headers_everywhere(make_api: AppFactory) -> None:
    app, api = await make_api()
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    for path, headers in (("/v1/jobs", admin), ("/healthz", {}), ("/v1/jobs", {}), ("/", {})):
        r = await api.get(path, headers=headers)
        assert r.headers["X-Content-Type-Options"] == "nosniff", path
        assert r.headers["X-Frame-Options"] == "DENY", path
        assert r.headers["Referrer-Policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"], path
    docs = await api.get("/docs")
    assert docs.status_code == 200  # public, as are its assets, served locally
    assert "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]
    assert "https:" not in docs.headers["Content-Security-Policy"]
    assert (await api.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200


async def test_no_secret_in_logs(make_api: AppFactory) -> None:
    app, api = await make_api(login_max_failures=2)
    await app.state.auth.create_user("ada", PASSWORD, Role.ADMIN)
    with capture_logs() as logs:
        token = (await api.post("/v1/auth/login", json=login_body())).json()["access_token"]
        await api.get("/v1/jobs", headers=bearer(token))
        await api.get("/v1/jobs", headers=bearer(token + "x"))
        for _ in range(3):
            await api.post("/v1/auth/login", json=login_body(password="guess-" + PASSWORD))
        made = await api.post(
            "/v1/tokens", json={"name": "w", "role": "worker"}, headers=bearer(token)
        )
    text = repr(logs)
    assert logs, "expected some auth log lines"
    for secret in (PASSWORD, token, made.json()["token"], TEST_SECRET):
        assert secret not in text


async def test_workers_show_their_breakers(make_api: AppFactory, store: Store) -> None:
    app, api = await make_api()
    now = utcnow()
    await store.register_worker(
        WorkerInfo(
            id="w1",
            hostname="h",
            pid=1,
            queues=["default"],
            concurrency=1,
            started_at=now,
            last_seen_at=now,
        )
    )
    await store.touch_worker("w1", 0, {"breakers": {"pay": {"state": "open"}}})
    admin = bearer(access_token(app.state.settings, Role.ADMIN))
    (w,) = (await api.get("/v1/workers", headers=admin)).json()["workers"]
    assert w["meta"]["breakers"]["pay"]["state"] == "open"


def test_server_refuses_to_start_without_a_signing_key(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match="CONVEYOR_JWT_SECRET"):
        create_app(secure_settings(sqlite_url, jwt_secret=None))
    # auth off must be asked for explicitly; then no key is needed
    create_app(secure_settings(sqlite_url, jwt_secret=None, auth_enabled=False))


async def test_auth_disabled_is_an_explicit_admin_mode(make_api: AppFactory) -> None:
    _, api = await make_api(auth_enabled=False, jwt_secret=None)
    assert (await api.get("/v1/jobs")).status_code == 200
    assert (await api.get("/v1/auth/me")).json()["role"] == "admin"
    login = await api.post("/v1/auth/login", json=login_body("a", "b-b-b-b-b"))
    assert login.status_code == 503
