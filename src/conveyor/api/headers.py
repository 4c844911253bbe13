"""Security headers on every response, added by the front gate rather than per route.

Nothing loads anything from elsewhere (Swagger UI's assets are served locally, see
conveyor.api.docs), so the policy is strict; only the Swagger UI page at /docs needs its inline
bootstrap script.
"""

from __future__ import annotations

STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_COMMON: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
# Token responses must never sit in a cache.
_NO_STORE_PREFIXES = ("/v1/auth/", "/v1/tokens")


Header = tuple[bytes, bytes]
_STRICT: list[Header] = [*_COMMON, (b"content-security-policy", STRICT_CSP.encode())]
_DOCS: list[Header] = [*_COMMON, (b"content-security-policy", DOCS_CSP.encode())]
_TOKENS: list[Header] = [*_STRICT, (b"cache-control", b"no-store")]


def security_headers(path: str) -> list[Header]:
    """The headers every response on `path` carries (a response's own take precedence)."""
    if path == "/docs":
        return _DOCS
    if path.startswith(_NO_STORE_PREFIXES):
        return _TOKENS
    return _STRICT
