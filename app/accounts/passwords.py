"""Password hashing with Argon2id (argon2-cffi), and the rules a new password must meet."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.errors import invalid

_hasher = PasswordHasher()
# Verified against when the account does not exist, so an unknown address costs the same
# time as a wrong password and the answer's timing tells nothing.
_DUMMY = _hasher.hash(secrets.token_urlsafe(16))
MIN_LENGTH = 10
MAX_LENGTH = 1000


def hash_password(password: str) -> str:
    """An Argon2id hash of a password that meets the rules."""
    if len(password) < MIN_LENGTH:
        raise invalid("password", f"use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise invalid("password", f"use at most {MAX_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches; the same work is done when there is no stored hash."""
    try:
        return _hasher.verify(stored or _DUMMY, password[:MAX_LENGTH]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def token_hash(token: str) -> str:
    """The SHA-256 kept in place of a random token (session id, link, API key)."""
    return hashlib.sha256(token.encode()).hexdigest()
