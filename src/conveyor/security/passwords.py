"""Password hashing with Argon2id (argon2-cffi), a memory-hard KDF: a stolen users table costs
an attacker memory per guess, not just CPU, which is what makes GPU farms expensive."""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # hashing cost grows with length: bound it


class PasswordHasher:
    """Thin wrapper so callers never handle argon2's exception zoo, and so unknown users cost as
    much as known ones (a fast "no such user" would tell an attacker which names exist)."""

    def __init__(self, hasher: _Argon2 | None = None) -> None:
        self._h = hasher or _Argon2()
        self._dummy: str | None = None  # made on first need: hashing costs ~0.2 s

    def hash(self, password: str) -> str:
        return self._h.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """False on a mismatch, a malformed hash, or no hash at all (then a dummy hash is
        verified anyway, to keep the timing the same)."""
        if stored_hash is None and self._dummy is None:
            self._dummy = self._h.hash("conveyor-dummy-password")
        try:
            return self._h.verify(stored_hash or self._dummy or "", password) and bool(stored_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the hash was made with weaker parameters than today's: rehash at login."""
        try:
            return self._h.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True
