"""Who is making a request: the admin token, an API key, or a signed-in person."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SESSION_COOKIE = "tidings_session"
# A random value given to a browser before it signs in, so the sign-in forms carry a
# CSRF token too (double submit: the form's token must be derived from this cookie).
PRESESSION_COOKIE = "tidings_pre"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Principal:
    """The caller: what the audit log calls them and what they may do."""

    actor: str
    scopes: frozenset[str]
    role: str | None = None
    account_id: int | None = None


def csrf_token_for(secret_key: str, cookie: str) -> str:
    """The CSRF token that belongs to a session (or pre-session) cookie."""
    return hmac.new(secret_key.encode(), b"csrf:" + cookie.encode(), hashlib.sha256).hexdigest()


def csrf_matches(secret_key: str, cookie: str | None, presented: str | None) -> bool:
    if not cookie or not presented:
        return False
    return hmac.compare_digest(csrf_token_for(secret_key, cookie).encode(), presented.encode())
