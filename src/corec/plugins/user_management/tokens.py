"""Secrets: random bearer tokens (stored as SHA-256) and argon2id password hashes.

- A token is ``corec_<kind>_`` + ``secrets.token_urlsafe(32)`` (256 random bits). Only
  its SHA-256 hex digest is stored: a secret with that much entropy cannot be guessed
  from its digest, so it needs no slow hash (unlike a password), and a lookup is one
  indexed read. The token itself is shown once, when it is made.
- A password is hashed with argon2id (``argon2-cffi``'s :class:`PasswordHasher`,
  RFC 9106's low-memory profile: 64 MiB, 3 passes, 4 lanes; about 0.1 s). Hashing and
  verifying are CPU work: call them off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cached_property
from typing import Final, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

TokenKind = Literal["api", "access", "refresh"]
"""``api``: long-lived, made with ``corec users token``; ``access`` / ``refresh``: a
login's session (see :mod:`corec.messages.user_data`)."""

TOKEN_PREFIXES: Final[dict[TokenKind, str]] = {
    "api": "corec_api_",
    "access": "corec_at_",
    "refresh": "corec_rt_",
}
"""Prefix per kind: lets a person (and a secret scanner) tell what a leaked string is."""

TOKEN_RANDOM_BYTES: Final = 32
PASSWORD_RANDOM_BYTES: Final = 18  # 24 URL-safe characters, 144 bits


def new_token(kind: TokenKind) -> str:
    """A new random bearer token of ``kind``, e.g. ``corec_api_Xk3…`` (about 53 chars)."""
    return TOKEN_PREFIXES[kind] + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)


def token_digest(token: str) -> str:
    """The stored form of a token: SHA-256 of its UTF-8 bytes, 64 lower-case hex chars."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_password() -> str:
    """A random password (24 URL-safe characters) for the initial admin."""
    return secrets.token_urlsafe(PASSWORD_RANDOM_BYTES)


class Passwords:
    """argon2id hashing and checking of passwords.

    Args:
        hasher: the :class:`PasswordHasher` to use (default parameters when ``None``).
    """

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()

    @cached_property
    def _dummy(self) -> str:
        return self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        """The encoded argon2id hash of ``password`` (``$argon2id$v=19$m=…``, salted)."""
        return self._hasher.hash(password)

    def verify(self, encoded: str | None, password: str) -> bool:
        """True when ``password`` matches ``encoded``. With ``encoded=None`` (no such user,
        no password set) a dummy hash is checked and False returned, so a wrong user
        name takes as long as a wrong password."""
        try:
            return self._hasher.verify(encoded or self._dummy, password) and encoded is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        """True when ``encoded`` was made with other parameters than the current ones."""
        return self._hasher.check_needs_rehash(encoded)
