"""JWT issue/verify: every way a token can be wrong is a 401-class Unauthenticated."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import orjson
import pytest
from pydantic import SecretStr

from conveyor.config import Settings
from conveyor.domain.errors import ConfigError, Unauthenticated
from conveyor.domain.records import Role
from conveyor.security.tokens import TokenCodec, TokenType
from tests.security.keys import TEST_SECRET, ec_pem, public_pem, rsa_pem


def hs(**kw: Any) -> TokenCodec:
    return TokenCodec.from_settings(Settings(jwt_secret=SecretStr(TEST_SECRET)), **kw)


def rs() -> TokenCodec:
    return TokenCodec.from_settings(
        Settings(jwt_algorithm="RS256", jwt_private_key=SecretStr(rsa_pem()))
    )


def es() -> TokenCodec:
    return TokenCodec.from_settings(
        Settings(jwt_algorithm="ES256", jwt_private_key=SecretStr(ec_pem()))
    )


def issue(codec: TokenCodec, **kw: Any) -> str:
    args: dict[str, Any] = dict(
        sub="ada", role=Role.USER, tenant="acme", typ=TokenType.ACCESS, ttl=60
    )
    args.update(kw)
    token, _ = codec.issue(**args)
    return token


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {
        "iss": "conveyor",
        "sub": "ada",
        "role": "admin",
        "tenant": None,
        "typ": "access",
        "jti": "j1",
        "iat": now,
        "exp": now + 60,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not ...}


@pytest.mark.parametrize("make", [hs, rs, es], ids=["HS256", "RS256", "ES256"])
def test_round_trip(make: Any) -> None:
    codec = make()
    token, issued = codec.issue(
        sub="ada", role=Role.USER, tenant="acme", typ=TokenType.ACCESS, ttl=60
    )
    got = codec.decode(token)
    assert got == issued
    assert (got.sub, got.role, got.tenant, got.typ) == ("ada", Role.USER, "acme", TokenType.ACCESS)
    assert jwt.get_unverified_header(token)["alg"] == codec.algorithm


def test_expired_token_rejected() -> None:
    past = hs(clock=lambda: time.time() - 3600)
    with pytest.raises(Unauthenticated):
        hs().decode(issue(past, ttl=60))


def test_wrong_signature_rejected() -> None:
    other = TokenCodec.from_settings(Settings(jwt_secret=SecretStr("x" * 40)))
    with pytest.raises(Unauthenticated):
        hs().decode(issue(other))


def test_tampered_payload_rejected() -> None:
    header, _payload, sig = issue(hs()).split(".")
    forged = f"{header}.{b64(claims(role='admin', tenant=None))}.{sig}"
    with pytest.raises(Unauthenticated):
        hs().decode(forged)


@pytest.mark.parametrize("make", [hs, rs], ids=["HS256", "RS256"])
def test_alg_none_rejected(make: Any) -> None:
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims())}."
    with pytest.raises(Unauthenticated):
        make().decode(unsigned)
    with pytest.raises(Unauthenticated):
        make().decode(unsigned.rstrip("."))


def test_hs256_token_rejected_by_rs256_server_even_signed_with_its_public_key() -> None:
    # The classic confusion attack: the RSA public key used as an HMAC secret.
    pub = public_pem(rsa_pem()).encode()
    forged = jwt.encode(claims(), TEST_SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        rs().decode(forged)
    header = b64({"alg": "HS256", "typ": "JWT"})
    body = b64(claims())
    import hashlib
    import hmac

    sig = hmac.new(pub, f"{header}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    with pytest.raises(Unauthenticated):
        rs().decode(confused)


def test_rs256_token_rejected_by_hs256_server() -> None:
    with pytest.raises(Unauthenticated):
        hs().decode(issue(rs()))


def test_es256_token_rejected_by_rs256_server() -> None:
    with pytest.raises(Unauthenticated):
        rs().decode(issue(es()))


@pytest.mark.parametrize("missing", ["sub", "role", "typ", "iat", "exp", "jti", "iss"])
def test_missing_claim_rejected(missing: str) -> None:
    token = jwt.encode(claims(**{missing: ...}), TEST_SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        hs().decode(token)


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "root"},
        {"typ": "session"},
        {"iss": "someone-else"},
        {"sub": ""},
        {"tenant": 7},
        {"exp": "tomorrow"},
    ],
)
def test_malformed_claims_rejected(bad: dict[str, Any]) -> None:
    token = jwt.encode(claims(**bad), TEST_SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated):
        hs().decode(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 10_000])
def test_garbage_rejected(garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        hs().decode(garbage)


def test_missing_or_weak_keys_fail_at_start() -> None:
    with pytest.raises(ConfigError, match="CONVEYOR_JWT_SECRET"):
        TokenCodec.from_settings(Settings())
    with pytest.raises(ConfigError, match="at least 32"):
        TokenCodec.from_settings(Settings(jwt_secret=SecretStr("short")))
    with pytest.raises(ConfigError, match="PRIVATE_KEY"):
        TokenCodec.from_settings(Settings(jwt_algorithm="RS256"))
    with pytest.raises(ConfigError, match="does not fit"):
        TokenCodec.from_settings(
            Settings(jwt_algorithm="ES256", jwt_private_key=SecretStr(rsa_pem()))
        )


def test_key_from_file(tmp_path: Any) -> None:
    path = tmp_path / "key.pem"
    path.write_text(ec_pem())
    codec = TokenCodec.from_settings(
        Settings(jwt_algorithm="ES256", jwt_private_key=SecretStr(str(path)))
    )
    assert codec.decode(issue(codec)).sub == "ada"
