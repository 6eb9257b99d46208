"""API keys: named, scoped, shown once, stored as a SHA-256, revocable."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import ApiKey
from app.accounts.passwords import token_hash
from app.accounts.scopes import SCOPES
from app.db import utcnow
from app.errors import NotFound, invalid

PREFIX = "tdk_"
# last_used_at is written at most this often: a busy key costs no write per request.
TOUCH_EVERY = timedelta(minutes=1)


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise invalid("scopes", f"choose one or more of {', '.join(SCOPES)}")
    return [s for s in SCOPES if s in scopes]


async def create_key(
    *, session: AsyncSession, name: str, scopes: list[str], created_by: str
) -> tuple[ApiKey, str]:
    """A new key; the returned secret is never stored and never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise invalid("name", "give the key a name of 1 to 100 characters")
    secret = PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        scopes=check_scopes(scopes),
        key_hash=token_hash(secret),
        prefix=secret[: len(PREFIX) + 6],
        created_by=created_by,
    )
    session.add(key)
    await session.flush()
    return key, secret


async def list_keys(*, session: AsyncSession) -> list[ApiKey]:
    """Keys not revoked, newest first."""
    return list(
        await session.scalars(
            select(ApiKey).where(ApiKey.revoked_at.is_(None)).order_by(ApiKey.id.desc())
        )
    )


async def revoke_key(*, session: AsyncSession, key_id: int) -> ApiKey:
    key = await session.get(ApiKey, key_id)
    if key is None or key.revoked_at is not None:
        raise NotFound("no such key")
    key.revoked_at = utcnow()
    await session.flush()
    return key


async def find_key(*, session: AsyncSession, secret: str) -> ApiKey | None:
    """The live key for a presented secret (looked up by hash, so no comparison leaks)."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    key = await session.scalar(select(ApiKey).where(ApiKey.key_hash == token_hash(secret)))
    if key is None or key.revoked_at is not None:
        return None
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > TOUCH_EVERY:
        key.last_used_at = now
    return key
