"""The bounce log as people read it: filtered, newest first, in keyset pages."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import invalid
from app.models import Bounce
from app.subscribers.addresses import email_key

BounceType = Literal["hard", "soft", "complaint", "unsubscribe"]
BOUNCE_TYPES: tuple[str, ...] = ("hard", "soft", "complaint", "unsubscribe")


async def browse_bounces(
    *,
    session: AsyncSession,
    limit: int,
    before: int | None = None,
    email: str | None = None,
    type: str | None = None,  # noqa: A002
) -> list[Bounce]:
    """Up to `limit` bounces older than id `before`, of one address and/or one type."""
    if type is not None and type not in BOUNCE_TYPES:
        raise invalid("type", f"type is one of {', '.join(BOUNCE_TYPES)}", where="query")
    if email is not None and any(c in email for c in "\x00\r\n"):
        raise invalid("email", "email cannot contain NUL or line breaks", where="query")
    # Newest first over the primary key: a page is an index range, however long the log.
    stmt = select(Bounce).order_by(Bounce.id.desc()).limit(limit)
    if email:
        stmt = stmt.where(Bounce.email == email_key(email))
    if type:
        stmt = stmt.where(Bounce.type == type)
    if before is not None:
        stmt = stmt.where(Bounce.id < before)
    return list(await session.scalars(stmt))
