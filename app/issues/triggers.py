"""Triggered issues (welcome and drip sequences): the rule, and enrolment on confirmation.

An issue with a trigger `{list, after_seconds}` is never fanned out at once. While it is
`active` (lifecycle.activate), each member who confirms that list gets one delivery row,
written in the same flush as the confirmation, with `next_attempt_at = confirmed_at + N`:
the ordinary claim (`next_attempt_at <= now`, served by the (issue_id, status,
next_attempt_at) index) holds it back until then, and the dispatcher sends it like any
other, re-checking membership, blocklist and suppression just before it goes. The
(issue_id, subscriber_id) unique key makes a second confirmation a no-op.

Enrolment listens to the ORM flush rather than being called from each confirm path, so
the confirm link, the preference page and the admin API all enrol the same way; the
writers in Core call it themselves (the public sign-up `enrol`, the import `enrol_batch`
and `enrol_batch_pg`, set-based: one statement per batch and triggered issue).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    event,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, attributes

from app.db import UTCDateTime, on_postgresql, utcnow
from app.errors import Conflict, invalid
from app.models import Delivery, Issue, MailingList, Subscriber, Subscription

# Core only: the rule is read and written here and nowhere else (migration 0013).
_meta = MetaData()
issue_triggers = Table(
    "issue_triggers",
    _meta,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("list_id", Integer, nullable=False),
    Column("after_seconds", Integer, nullable=False),
)
MAX_AFTER = 10 * 365 * 86400  # ten years: anything longer is a typo, and fits in int4


async def rule(session: AsyncSession, issue_id: int) -> dict[str, Any] | None:
    """The issue's trigger as the API shows it, or None for an ordinary issue."""
    row = (
        await session.execute(
            select(MailingList.slug, issue_triggers.c.after_seconds)
            .join(MailingList, MailingList.id == issue_triggers.c.list_id)
            .where(issue_triggers.c.issue_id == issue_id)
        )
    ).first()
    return None if row is None else {"list": row[0], "after_seconds": row[1]}


async def check(session: AsyncSession, slug: str, after_seconds: int) -> MailingList:
    """The trigger's list; 422 naming the field for an unknown list or a bad delay."""
    if after_seconds < 0 or after_seconds > MAX_AFTER:
        raise invalid("trigger.after_seconds", f"after_seconds must be 0 to {MAX_AFTER}")
    found = await session.scalar(select(MailingList).where(MailingList.slug == slug))
    if found is None:
        raise invalid("trigger.list", f"unknown list: {slug}")
    return found


async def store(session: AsyncSession, issue_id: int, list_id: int, after_seconds: int) -> None:
    """Write (or replace) the issue's trigger."""
    await session.execute(issue_triggers.delete().where(issue_triggers.c.issue_id == issue_id))
    await session.execute(
        issue_triggers.insert().values(
            issue_id=issue_id, list_id=list_id, after_seconds=after_seconds
        )
    )


async def is_triggered(session: AsyncSession, issue_id: int) -> bool:
    """Whether the issue has a trigger (and so is activated, never sent)."""
    found = await session.scalar(
        select(issue_triggers.c.issue_id).where(issue_triggers.c.issue_id == issue_id)
    )
    return found is not None


# A triggered issue is edited while it enrols no one: before its first activation, or
# deactivated. Ordinary issues keep lifecycle.EDITABLE (draft, scheduled).
EDITABLE = ("draft", "inactive")


async def patch(
    session: AsyncSession, issue_id: int, *, status: str, given: bool,
    slug: str | None, after_seconds: int | None, lists: list[str] | None,
) -> list[str] | None:  # fmt: skip
    """A PATCH's trigger and lists for the issue; the lists it must have now (None: as is).

    `given`: the PATCH names `trigger` (`slug` None: remove it). While active, 409: it is
    deactivated first. A draft may gain, change or lose its trigger; an inactive one may
    change it but not lose it (inactive is a triggered issue's status). A new delay counts
    for confirmations from then on; deliveries already queued keep their time. The lists
    stay [trigger.list]: named otherwise, 422.
    """
    current = await rule(session, issue_id)
    if status == "active" and (given or lists is not None):
        raise Conflict("deactivate the triggered issue before changing its trigger or lists")
    if not given:
        if current is not None and lists is not None and lists != [current["list"]]:
            raise invalid("lists", "a triggered issue's lists must be [trigger.list]")
        return None
    if status not in EDITABLE:
        raise Conflict(f"cannot change the trigger of an issue that is {status}")
    if slug is None:
        if status != "draft":
            raise Conflict("only a draft can stop being a triggered issue")
        await session.execute(issue_triggers.delete().where(issue_triggers.c.issue_id == issue_id))
        return None
    after = after_seconds if after_seconds is not None else -1  # the schema requires it
    found = await check(session, slug, after)
    if lists is not None and lists != [found.slug]:
        raise invalid("lists", "a triggered issue's lists must be [trigger.list]")
    await store(session, issue_id, found.id, after)
    return [found.slug]


async def copy(session: AsyncSession, source_id: int, copy_id: int) -> None:
    """The duplicate of a triggered issue is triggered alike (and a draft, so inactive)."""
    await session.execute(
        issue_triggers.insert().from_select(
            ["issue_id", "list_id", "after_seconds"],
            select(literal(copy_id), issue_triggers.c.list_id, issue_triggers.c.after_seconds)
            .where(issue_triggers.c.issue_id == source_id),
        )
    )  # fmt: skip


def _confirmed_now(session: Session) -> list[tuple[int, int, datetime]]:
    """(subscriber, list, confirmed_at) of every membership this flush made confirmed."""
    out = []
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, Subscription) or obj.status != "confirmed":
            continue
        if obj not in session.new:
            before = attributes.get_history(obj, "status").deleted
            if not before or before[0] == "confirmed":
                continue  # unchanged, or confirmed again while already confirmed
        out.append((obj.subscriber_id, obj.list_id, obj.confirmed_at or utcnow()))
    return out


def _enrol(session: Session, _context: Any) -> None:
    """after_flush: queue the active triggered issues of every list just confirmed."""
    confirmed = _confirmed_now(session)
    if confirmed:
        _enrol_rows(session.connection(), confirmed)


async def enrol(conn: AsyncConnection, confirmed: list[tuple[int, int, datetime]]) -> None:
    """The same for writers in Core (the public sign-up): (subscriber, list, confirmed_at)."""
    if confirmed:
        await conn.run_sync(_enrol_rows, confirmed)


def _enrol_rows(conn: Connection, confirmed: list[tuple[int, int, datetime]]) -> None:
    groups: dict[tuple[int, datetime], list[int]] = {}
    for subscriber_id, list_id, at in confirmed:
        groups.setdefault((list_id, at), []).append(subscriber_id)
    # Lists, then their issues, in id order: each enrolment updates its issue's row, so two
    # concurrent batches (the sign-up's group commit) lock issues in one order, no deadlock.
    for (list_id, at), ids in sorted(groups.items()):
        enrol_group(conn, list_id, ids, at)


def enrol_group(conn: Connection, list_id: int, subscriber_ids: list[int], at: datetime) -> int:
    """Enrol people who confirmed `list_id` at `at`: one INSERT ... SELECT per active rule.

    Set-based, so an import's batch of thousands costs a statement per triggered issue;
    only active people are enrolled, each once per issue. Returns the rows written.
    """
    rules = conn.execute(
        select(issue_triggers.c.issue_id, issue_triggers.c.after_seconds)
        .join(Issue, Issue.id == issue_triggers.c.issue_id)
        .where(Issue.status == "active", issue_triggers.c.list_id == list_id)
        .order_by(issue_triggers.c.issue_id)
    ).all()
    if not rules or not subscriber_ids:
        return 0
    dialect = postgresql if on_postgresql(conn) else sqlite
    issues = cast(Table, Issue.__table__)
    written = 0
    for issue_id, after in rules:
        people = select(
            literal(issue_id), Subscriber.id, literal("queued"), literal(0),
            literal(at + timedelta(seconds=after), UTCDateTime()),
        ).where(Subscriber.id.in_(subscriber_ids), Subscriber.status == "active")  # fmt: skip
        stmt = (
            dialect.insert(Delivery)
            .from_select(_DELIVERY_COLUMNS, people)
            .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
        )
        count = conn.execute(stmt).rowcount or 0
        if count:
            # Not a status change (lifecycle.py owns those): the count of enrolled people.
            conn.execute(
                update(issues)
                .where(issues.c.id == issue_id)
                .values(recipients=issues.c.recipients + count)
            )
        written += count
    return written


_DELIVERY_COLUMNS = ["issue_id", "subscriber_id", "status", "attempts", "next_attempt_at"]


async def enrol_batch(
    session: AsyncSession, list_id: int, subscriber_ids: list[int], at: datetime
) -> int:
    """enrol_group for a writer in a session (the SQLite import), in its transaction."""
    return await session.run_sync(
        lambda s: enrol_group(s.connection(), list_id, subscriber_ids, at)
    )


# The same for the PostgreSQL import, on its asyncpg connection: one round trip per
# batch, rules and recipients' counts included.
_ENROL_PG_INSERT = (
    "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, next_attempt_at)"
    " SELECT t.issue_id, s.id, 'queued', 0,"
    " $3::timestamptz + make_interval(secs => t.after_seconds)"
    " FROM issue_triggers t JOIN issues i ON i.id = t.issue_id AND i.status = 'active'"
    " JOIN subscribers s ON s.id = ANY($1::bigint[]) AND s.status = 'active'"
    " WHERE t.list_id = $2::int"
    " ON CONFLICT (issue_id, subscriber_id) DO NOTHING RETURNING issue_id"
)
# The count of enrolled people, as enrol_group keeps it (no status change: lifecycle.py's).
_ENROL_PG_COUNT = (
    "UPDATE issues SET recipients = issues.recipients + c.n"
    " FROM (SELECT issue_id, count(*) AS n FROM enrolled GROUP BY issue_id) c"
    " WHERE issues.id = c.issue_id"
)
_ENROL_PG = "WITH enrolled AS (" + _ENROL_PG_INSERT + ") " + _ENROL_PG_COUNT
# The list's triggered issues locked in id order before their counts are updated, as
# enrol_group takes them: two batches in flight (an import writes two at a time) cannot
# deadlock on them.
_LOCK_PG = (
    "SELECT FROM issues i JOIN issue_triggers t ON t.issue_id = i.id"
    " WHERE t.list_id = $1 AND i.status = 'active' ORDER BY i.id FOR NO KEY UPDATE OF i"
)


async def enrol_batch_pg(conn: Any, list_id: int, subscriber_ids: list[int], at: datetime) -> None:
    """enrol_group on an asyncpg connection (the PostgreSQL import), in its transaction."""
    if subscriber_ids:
        await conn.execute(_LOCK_PG, list_id)
        await conn.execute(_ENROL_PG, subscriber_ids, list_id, at)


def install() -> None:
    """Listen to every session's flushes (idempotent: called when memberships is imported)."""
    if not event.contains(Session, "after_flush", _enrol):
        event.listen(Session, "after_flush", _enrol)
