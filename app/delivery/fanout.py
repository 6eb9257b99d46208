"""Fan-out: a send's recipients fixed at the send call, their delivery rows written as claimed.

A small send (at most `fanout_inline_limit` recipients) writes one delivery per recipient
in the send call, in one INSERT … SELECT, as it always did. A larger one would spend
seconds there (9.3 s at 1,000,000), so the send call only fixes who the recipients are:
the issue's lists, the members confirmed at or before `started_at` (the snapshot; a
membership without `confirmed_at` counts from its `created_at`), active, and the
segment's rules as they were at the send call. It counts them (`recipients`) and stores
an `issue_fanouts` row: the snapshot, a cursor on subscriber ids and the last id.

The workers then write the rows as they claim, already claimed (queue.claim calls takes.take
when the due deliveries it found leave room, in the claim's own transaction): the fan-out
row is locked, the next members after its cursor are picked by subscriber id, their
deliveries inserted as `sending` under the claimer's lease, and the cursor moved past
them. Why this is exactly once and crash safe:

- The cursor moves and the rows are written in one transaction: a crash (SIGKILL, the
  database going away) rolls back both, and the next claim takes those members again.
  A worker that dies after the commit leaves `sending` rows whose lease expires, and
  queue.recover_expired puts them back in the queue, as for any claim.
- Two workers never take one member: the fan-out row is locked before its cursor is read
  (PostgreSQL: the second take waits for the first to commit; SQLite: writers are
  serialised). `ON CONFLICT (issue_id, subscriber_id) DO NOTHING` stands behind both.
- Only a `sending` issue takes: a paused one keeps its cursor and a resumed one goes on
  from it; `drop` (cancel) ends the fan-out, and lifecycle.finish_sending never finishes
  an issue whose fan-out is not done.

What the snapshot fixes is membership, not every later change: someone who unsubscribes
or is blocklisted after the send call gets no row (the re-check before each message would
have skipped them anyway), and a segment's rules that read engagement or the clock are
evaluated as each batch is written, not all at the send call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    Select,
    Table,
    false,
    func,
    literal,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.db import Base, UTCDateTime, on_postgresql, utcnow
from app.delivery.statements import UTC_TIME
from app.models import Delivery, Issue, IssueList, Subscriber, Subscription
from app.segments import service as segments
from app.segments.models import Segment

# One row per batched send (migration 0015). Defined here, beside the only code that reads
# or writes it; on Base's metadata so that the schema and the tests' clean-up know it.
issue_fanouts = Table(
    "issue_fanouts",
    Base.metadata,
    Column("issue_id", Integer, ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True),
    Column("snapshot_at", UTCDateTime, nullable=False),
    # Deliveries exist for every recipient with an id <= next_subscriber_id; the last batch
    # written covered (batch_from, next_subscriber_id].
    Column("batch_from", BigInteger, nullable=False),
    Column("next_subscriber_id", BigInteger, nullable=False),
    Column("last_subscriber_id", BigInteger, nullable=False),
    Column("segment_rules", JSON, nullable=True),  # the segment's rules at the send call
    Column("done", Boolean, nullable=False, server_default=false()),
)

_COLUMNS = ["issue_id", "subscriber_id", "status", "attempts", "next_attempt_at"]


def members(
    lists: list[int],
    *columns: Any,
    audience: ColumnElement[bool] | None = None,
    snapshot: datetime | None = None,
    after: int | None = None,
    upto: int | None = None,
) -> Select[Any]:
    """SELECT `columns` of the confirmed, active members of `lists`, each once (the fan-out).

    The issue's list ids are given, not joined: the planner then sees which lists, and so
    how many members (a hash join for a large list, index lookups for a small one), and a
    single list needs no DISTINCT, since (subscriber, list) is the key.
    """
    query = (
        select(*columns)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(Subscription.list_id.in_(lists), Subscription.status == "confirmed",
               Subscriber.status == "active")
    )  # fmt: skip
    if len(lists) > 1:
        query = query.distinct()
    if audience is not None:
        query = query.where(audience)
    if snapshot is not None:
        confirmed = func.coalesce(Subscription.confirmed_at, Subscription.created_at)
        query = query.where(confirmed <= literal(snapshot, UTC_TIME))
    if after is not None:
        query = query.where(Subscription.subscriber_id > after)
    if upto is not None:
        query = query.where(Subscription.subscriber_id <= upto)
    return query


def _insert(session: AsyncSession, rows: Select[Any]) -> Any:
    insert = postgresql.insert if on_postgresql(session) else sqlite.insert
    return (
        insert(Delivery)
        .from_select(_COLUMNS, rows)
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
    )


def _rows(issue_id: int, lists: list[int], now: datetime, **where: Any) -> Select[Any]:
    fixed = (literal(issue_id), literal("queued"), literal(0), literal(now, UTC_TIME))
    cols = (fixed[0], Subscription.subscriber_id, *fixed[1:])
    return members(lists, *cols, **where)


async def _lists(session: AsyncSession, issue_id: int) -> list[int]:
    """The issue's list ids (fixed once it is sending: only a draft's lists change)."""
    found = await session.scalars(select(IssueList.list_id).where(IssueList.issue_id == issue_id))
    return list(found.all())


async def audience_of(session: AsyncSession, rules: Any) -> ColumnElement[bool] | None:
    if rules is None:
        return None
    return await segments.clause_for(session, rules, strict=False)


async def enqueue_issue(*, session: AsyncSession, issue_id: int) -> int:
    """Write one delivery per confirmed, active member now (the inline fan-out); idempotent.

    Returns how many the issue has. An issue with a segment gets only the members who also
    match it (app/segments).
    """
    segment_id = await session.scalar(select(Issue.segment_id).where(Issue.id == issue_id))
    audience = None
    if segment_id is not None:
        audience = await segments.member_clause(session, segment_id)
    lists = await _lists(session, issue_id)
    if lists:
        rows = _rows(issue_id, lists, utcnow(), audience=audience)
        await session.execute(_insert(session, rows))
    # Counted, not taken from the INSERT's rowcount: a second call (idempotent) adds none.
    count = await session.scalar(
        text("SELECT count(*) FROM deliveries WHERE issue_id = :i"), {"i": issue_id}
    )
    return int(count or 0)


async def begin(*, session: AsyncSession, issue_id: int, inline_limit: int) -> int:
    """Fix a starting issue's recipients: inline when few, else as a snapshot; their number.

    Runs in the send call's transaction, after the issue was moved to sending.
    """
    issue = (
        await session.execute(
            select(Issue.started_at, Issue.segment_id).where(Issue.id == issue_id)
        )
    ).one()
    rules = None
    if issue.segment_id is not None:
        rules = await session.scalar(select(Segment.rules).where(Segment.id == issue.segment_id))
    audience = await audience_of(session, rules)
    snapshot = issue.started_at or utcnow()
    lists = await _lists(session, issue_id)
    count, low, high = 0, None, None
    if lists and on_postgresql(session):
        # For this transaction only: a million ids hash in memory instead of spilling to
        # temporary files (measured: 8 batches, 230 MB written and read at 4 MB), and a
        # statement run once per send is not worth compiling (JIT).
        await session.execute(
            text("SELECT set_config('work_mem', '64MB', true), set_config('jit', 'off', true)")
        )
    if lists:
        ids = members(
            lists, Subscription.subscriber_id, audience=audience, snapshot=snapshot
        ).subquery()
        count, low, high = (
            await session.execute(
                select(func.count(), func.min(ids.c.subscriber_id), func.max(ids.c.subscriber_id))
            )
        ).one()
    if count <= inline_limit or low is None or high is None:
        return await enqueue_issue(session=session, issue_id=issue_id)
    insert = postgresql.insert if on_postgresql(session) else sqlite.insert
    await session.execute(
        insert(issue_fanouts)
        .values(issue_id=issue_id, snapshot_at=snapshot, batch_from=low - 1,
                next_subscriber_id=low - 1, last_subscriber_id=high, segment_rules=rules,
                done=False)
        .on_conflict_do_nothing(index_elements=["issue_id"])
    )  # fmt: skip
    return int(count)


async def drop(*, session: AsyncSession, issue_id: int) -> None:
    """End an issue's fan-out (cancel): no more deliveries are written for it.

    On PostgreSQL this waits for a batch being written right now to commit, so the
    caller's next statement (cancelling what is queued) sees that batch's rows too.
    """
    await session.execute(
        issue_fanouts.update().where(issue_fanouts.c.issue_id == issue_id).values(done=True)
    )
