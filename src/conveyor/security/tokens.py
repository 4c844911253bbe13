"""Signed JWTs (PyJWT): short-lived access tokens, refresh tokens, and long-lived API tokens.

Rules, and why:

* The verifying algorithm is pinned from configuration and is the only one accepted: a token's
  own `alg` header is never trusted, so `none`, or an HS256 token forged with an RS256 server's
  public key as its secret, is rejected before any signature is looked at.
* Every token carries sub, role, tenant, typ, iat, exp, jti and iss; a token missing any of them
  is rejected, so a token minted by some other service with the same key cannot pass for ours.
* Access tokens are short-lived and checked without a store lookup; refresh and API tokens are
  checked against the store by the caller (a disabled user, a revoked API token).
* A failure says only "invalid token": the reason is logged for operators, not told to callers.
"""

from __future__ import annotations

import enum
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conveyor.config import Settings
from conveyor.domain.errors import ConfigError, Unauthenticated
from conveyor.domain.records import Role

ISSUER = "conveyor"
MIN_SECRET_BYTES = 32
REQUIRED_CLAIMS = ("sub", "role", "typ", "iat", "exp", "jti", "iss")
MAX_TOKEN_LENGTH = 8192  # a bearer token longer than this is not one of ours: do not parse it


class TokenType(enum.StrEnum):
    ACCESS = "access"
    REFRESH = "refresh"
    API = "api"


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    role: Role
    tenant: str | None
    typ: TokenType
    jti: str
    iat: datetime
    exp: datetime


def generate_secret() -> str:
    """A fresh HS256 secret (for `conveyor dev`); 48 random bytes, URL-safe text."""
    return secrets.token_urlsafe(48)


def _pem(value: str) -> bytes:
    """PEM text as given, or the contents of the file it names."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    try:
        return Path(text).expanduser().read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read JWT key file {text!r}: {exc}") from exc


class TokenCodec:
    """Issues and verifies Conveyor's JWTs with one configured algorithm and key pair."""

    def __init__(
        self,
        algorithm: str,
        signing_key: Any,
        verify_key: Any,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.algorithm = algorithm
        self._signing_key = signing_key
        self._verify_key = verify_key
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> TokenCodec:
        """Raises ConfigError with an operator-facing message when the key material is missing,
        too weak, or does not fit the algorithm; never falls back to a default secret."""
        alg = settings.jwt_algorithm
        if alg == "HS256":
            if settings.jwt_secret is None or not settings.jwt_secret.get_secret_value():
                raise ConfigError(
                    "auth is on but no signing key is configured: set CONVEYOR_JWT_SECRET "
                    f"(at least {MIN_SECRET_BYTES} random bytes, e.g. `python -c 'import "
                    "secrets; print(secrets.token_urlsafe(48))'`), or use RS256/ES256 with "
                    "CONVEYOR_JWT_PRIVATE_KEY"
                )
            secret = settings.jwt_secret.get_secret_value().encode()
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"CONVEYOR_JWT_SECRET is {len(secret)} bytes; HS256 needs at least "
                    f"{MIN_SECRET_BYTES}"
                )
            return cls(alg, secret, secret, clock=clock)
        if settings.jwt_private_key is None:
            raise ConfigError(
                f"auth is on with {alg} but CONVEYOR_JWT_PRIVATE_KEY (PEM text or a path to a "
                "PEM file) is not set"
            )
        try:
            private = serialization.load_pem_private_key(
                _pem(settings.jwt_private_key.get_secret_value()), password=None
            )
            public = (
                serialization.load_pem_public_key(_pem(settings.jwt_public_key))
                if settings.jwt_public_key
                else private.public_key()
            )
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"cannot load the {alg} key: {exc}") from exc
        if alg == "RS256":
            ok = isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
            if ok and private.key_size < 2048:  # type: ignore[union-attr]
                raise ConfigError("RS256 needs an RSA key of at least 2048 bits")
        else:
            ok = (
                isinstance(private, ec.EllipticCurvePrivateKey)
                and isinstance(private.curve, ec.SECP256R1)
                and isinstance(public, ec.EllipticCurvePublicKey)
            )
        if not ok:
            raise ConfigError(f"the configured key does not fit {alg}")
        return cls(alg, private, public, clock=clock)

    def issue(
        self,
        *,
        sub: str,
        role: Role,
        tenant: str | None,
        typ: TokenType,
        ttl: float,
        jti: str | None = None,
    ) -> tuple[str, Claims]:
        now = int(self._clock())
        claims = Claims(
            sub=sub,
            role=Role(role),
            tenant=tenant,
            typ=typ,
            jti=jti or uuid.uuid4().hex,
            iat=datetime.fromtimestamp(now, UTC),
            exp=datetime.fromtimestamp(now + max(1, int(ttl)), UTC),
        )
        payload = {
            "iss": ISSUER,
            "sub": claims.sub,
            "role": claims.role.value,
            "tenant": claims.tenant,
            "typ": claims.typ.value,
            "jti": claims.jti,
            "iat": now,
            "exp": now + max(1, int(ttl)),
        }
        token = jwt.encode(payload, self._signing_key, algorithm=self.algorithm)
        return token, claims

    def decode(self, token: str) -> Claims:
        """Raise Unauthenticated unless signature, algorithm, issuer, expiry and claim set all
        check out. The precise reason stays in the exception chain, for logs only."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("invalid token")
        try:
            data = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.algorithm],
                issuer=ISSUER,
                options={"require": list(REQUIRED_CLAIMS)},
                leeway=0,
            )
            typ = TokenType(data["typ"])
            role = Role(data["role"])
            tenant = data.get("tenant")
            sub, jti = data["sub"], data["jti"]
            if not isinstance(sub, str) or not isinstance(jti, str) or not sub or not jti:
                raise ValueError("sub and jti must be non-empty strings")
            if tenant is not None and not isinstance(tenant, str):
                raise ValueError("tenant must be a string or null")
            return Claims(
                sub=sub,
                role=role,
                tenant=tenant,
                typ=typ,
                jti=jti,
                iat=datetime.fromtimestamp(int(data["iat"]), UTC),
                exp=datetime.fromtimestamp(int(data["exp"]), UTC),
            )
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise Unauthenticated("invalid token") from exc
