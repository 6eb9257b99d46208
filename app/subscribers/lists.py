"""Lists: create, read, change and delete them, their kept member counts, lookup by slug.

Services only flush; the request's session is committed by its dependency.
"""

from __future__ import annotations

from sqlalchemy import column, func, select, table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import on_postgresql
from app.errors import Conflict, Invalid, NotFound
from app.models import Issue, IssueList, MailingList
from app.subscribers.schemas import ListCreate, ListUpdate


async def create_list(*, session: AsyncSession, data: ListCreate) -> MailingList:
    """Create a list; Conflict when the slug is taken."""
    if await session.scalar(select(MailingList.id).where(MailingList.slug == data.slug)):
        raise Conflict(f"a list with slug {data.slug!r} exists")
    mailing_list = MailingList(**data.model_dump())
    session.add(mailing_list)
    try:
        await session.flush()
    except IntegrityError:  # created by a concurrent request since the check
        raise Conflict(f"a list with slug {data.slug!r} exists") from None
    return mailing_list


async def get_list(*, session: AsyncSession, slug: str) -> MailingList:
    """The list with this slug; NotFound (it was named in the path)."""
    try:
        return (await lists_by_slug(session=session, slugs=[slug]))[0]
    except Invalid:
        raise NotFound(f"no list with slug {slug!r}") from None


async def browse_lists(
    *, session: AsyncSession, after: int, limit: int, public_only: bool = False
) -> list[MailingList]:
    stmt = select(MailingList).where(MailingList.id > after).order_by(MailingList.id)
    if public_only:
        stmt = stmt.where(MailingList.public.is_(True))
    return list(await session.scalars(stmt.limit(limit)))


# Kept by triggers on subscriptions (migration 0010): signed deltas per (list, status).
_COUNTS = table("list_member_counts", column("list_id"), column("status"), column("n"))
# Past this many delta rows per list read, PostgreSQL's are folded into one per (list, status).
FOLD_AT = 64
_FOLD = text(
    "WITH gone AS (DELETE FROM list_member_counts WHERE list_id = ANY(:ids)"
    " RETURNING list_id, status, n)"
    " INSERT INTO list_member_counts (list_id, status, n)"
    " SELECT list_id, status, sum(n) FROM gone GROUP BY list_id, status"
)


async def list_counts(*, session: AsyncSession, list_ids: list[int]) -> dict[int, dict[str, int]]:
    """Members of each list by subscription status, from the kept counts (no count per row)."""
    counts = {i: {"confirmed": 0, "pending": 0, "unsubscribed": 0} for i in list_ids}
    if not list_ids:
        return counts
    rows = (
        await session.execute(
            select(_COUNTS.c.list_id, _COUNTS.c.status, func.sum(_COUNTS.c.n), func.count())
            .where(_COUNTS.c.list_id.in_(list_ids))
            .group_by(_COUNTS.c.list_id, _COUNTS.c.status)
        )
    ).all()
    for list_id, status, total, _ in rows:
        counts[list_id][status] = int(total)
    deltas = sum(r[3] for r in rows)
    if deltas > FOLD_AT * len(list_ids) and on_postgresql(session):
        # Concurrent writers only add rows; a row they add after this DELETE's snapshot is
        # left for the next fold, so the sums never change by folding.
        await session.execute(_FOLD, {"ids": list_ids})
    return counts


async def update_list(*, session: AsyncSession, slug: str, data: ListUpdate) -> MailingList:
    mailing_list = await get_list(session=session, slug=slug)
    for key, value in data.model_dump(exclude_none=True).items():
        setattr(mailing_list, key, value)
    if "language" in data.model_fields_set:  # an explicit null returns to the default
        mailing_list.language = data.language
    await session.flush()
    return mailing_list


# An issue in these states will still read its lists: at send time, or while it sends.
ISSUE_STATES_NEEDING_LISTS = ("draft", "scheduled", "sending", "paused")


async def delete_list(*, session: AsyncSession, slug: str) -> None:
    """Delete a list; Conflict naming the issues that still target it and may yet send."""
    mailing_list = await get_list(session=session, slug=slug)
    blocking = (
        await session.execute(
            select(Issue.id, Issue.status)
            .join(IssueList, IssueList.issue_id == Issue.id)
            .where(
                IssueList.list_id == mailing_list.id,
                Issue.status.in_(ISSUE_STATES_NEEDING_LISTS),
            )
            .order_by(Issue.id)
        )
    ).all()
    if blocking:
        named = ", ".join(f"{issue_id} ({status})" for issue_id, status in blocking)
        raise Conflict(
            f"list {slug!r} is targeted by issue(s) {named}; "
            "remove it from them, or cancel them, first"
        )
    await session.delete(mailing_list)
    await session.flush()


async def lists_by_slug(
    *,
    session: AsyncSession,
    slugs: list[str],
    public_only: bool = False,
    loc: tuple[str, ...] = ("body", "lists"),
) -> list[MailingList]:
    """The lists named, in order, once each; Invalid naming every slug unknown (or not public).

    The one lookup of lists by slug: the admin API, the importer and issues all use it.
    """
    wanted = list(dict.fromkeys(slugs))
    stmt = select(MailingList).where(MailingList.slug.in_(wanted))
    found = {m.slug: m for m in await session.scalars(stmt)}
    if public_only:
        found = {s: m for s, m in found.items() if m.public}
    missing = [s for s in wanted if s not in found]
    if missing:
        what = "public list" if public_only else "list"
        names = ", ".join(repr(s) for s in missing)
        raise Invalid(f"no {what} with slug {names}", loc=loc)
    return [found[s] for s in wanted]
