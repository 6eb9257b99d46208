"""Finding subscribers: by id pages, a list and its membership status, and a needle.

The same query serves `GET /api/v1/subscribers`, the console's table and its CSV export.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import on_postgresql
from app.errors import Invalid
from app.models import TRIGRAM, Subscriber, Subscription, search_text
from app.subscribers.lists import get_list


async def search_subscribers(
    *,
    session: AsyncSession,
    after: int,
    limit: int,
    q: str | None = None,
    list_slug: str | None = None,
    status: str | None = None,
) -> list[Subscriber]:
    """Subscribers by id; `status` is the membership's with a list, else the person's."""
    stmt = select(Subscriber).where(Subscriber.id > after).order_by(Subscriber.id).limit(limit)
    if q:
        stmt = stmt.where(await _matching(session, q.strip().lower()))
    if list_slug:
        mailing_list = await get_list(session=session, slug=list_slug)
        stmt = stmt.join(Subscription).where(Subscription.list_id == mailing_list.id)
        if status:
            if status not in ("pending", "confirmed", "unsubscribed"):
                raise Invalid(
                    "with a list, status is one of pending, confirmed, unsubscribed",
                    loc=("query", "status"),
                )
            stmt = stmt.where(Subscription.status == status)
    elif status:
        if status not in ("active", "blocklisted"):
            raise Invalid(
                "without a list, status is one of active, blocklisted", loc=("query", "status")
            )
        stmt = stmt.where(Subscriber.status == status)
    return list(await session.scalars(stmt))


# The trigram index (migrations 0010, 0017) serves a LIKE '%x%' from TRIGRAM characters on. A
# shorter needle is asked as strpos/instr, which no index matches, and PostgreSQL walks the
# primary key in id order until the page is full (quick for one or two characters, which
# most rows contain).


async def _matching(session: AsyncSession, needle: str) -> ColumnElement[bool]:
    """Rows whose address or lowercased name contains the needle, literally (no wildcards)."""
    email, name = Subscriber.email_key, func.lower(Subscriber.name)
    postgres = on_postgresql(session)
    if len(needle) < TRIGRAM:
        position = func.strpos if postgres else func.instr
        return or_(position(email, needle) > 0, position(name, needle) > 0)
    if postgres:
        # A plan made for the generic pattern cannot weigh it: ask for one per value, so a
        # rare needle goes through the index and a common one walks ids until the page fills.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    found = search_text().contains(needle, autoescape=True)
    if " " in needle:  # it could match across the address and the name: test each too
        each = [field.contains(needle, autoescape=True) for field in (email, name)]
        found = and_(found, or_(*each))
    return found
