"""Signed webhook tokens seen within their freshness window, kept in the database.

Mailgun's HMAC covers only its timestamp and token, not the event, so a captured
signature could carry any payload while it is fresh. Each token is accepted once: its
row is inserted in the request's own transaction, so a bounce and the token that
proved it commit (or roll back) together, and every worker or process sharing the
database refuses the second use.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Column, String, Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Base, UTCDateTime, on_postgresql, utcnow

# The table is created by migration 0007; declared here, beside its only user.
webhook_tokens = Table(
    "webhook_tokens",
    Base.metadata,
    Column("key", String(200), primary_key=True),
    Column("seen_at", UTCDateTime, nullable=False, index=True),
)


async def first_use(*, session: AsyncSession, provider: str, token: str, window: int) -> bool:
    """Remember `token` of `provider`; False when it was already used within `window` seconds."""
    now = utcnow()
    # A token older than twice the window can no longer pass the age check: forget it.
    await session.execute(
        delete(webhook_tokens).where(webhook_tokens.c.seen_at < now - timedelta(seconds=2 * window))
    )
    insert = postgresql.insert if on_postgresql(session) else sqlite.insert
    stmt = (
        insert(webhook_tokens)
        .values(key=f"{provider}:{token}"[:200], seen_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(webhook_tokens.c.key)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None
