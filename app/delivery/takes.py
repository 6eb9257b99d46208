"""A batched send's next recipients, written already claimed (the design: fanout.py).

queue.claim calls `take` when the due deliveries it found leave room, inside the claim's
transaction: three round trips on PostgreSQL (the cursor row locked with the issue's
lists, the next members picked, their rows written and the cursor moved), four on SQLite.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import JSON, BigInteger, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import UTCDateTime, on_postgresql
from app.delivery import fanout
from app.delivery.statements import timed
from app.models import Subscription

EMPTY_RANGES = 16  # id ranges with no member looked through in one take at most

# The cursor row is the take's lock: `SET done = done` changes nothing but takes the row.
# On PostgreSQL a second worker's take waits here until the first commits, then reads the
# cursor it left (a wait of one claim's transaction, a few ms: skipping instead would leave
# that worker with nothing to send at every collision, since every claim of a batched send
# comes here); on SQLite it is the write lock, taken before the cursor is read. The issue's
# lists come with it (fixed once it is sending), as text: one round trip, both backends.
_LOCK = (
    "UPDATE issue_fanouts SET done = done WHERE issue_id = :i AND NOT done"
    " AND EXISTS (SELECT 1 FROM issues WHERE id = :i AND status = 'sending')"
    " RETURNING batch_from, next_subscriber_id, last_subscriber_id, snapshot_at, segment_rules,"
    " (SELECT {agg} FROM issue_lists WHERE issue_id = :i) AS lists"
)
_LOCK_TYPES = {
    "batch_from": BigInteger,
    "next_subscriber_id": BigInteger,
    "last_subscriber_id": BigInteger,
    "snapshot_at": UTCDateTime,
    "segment_rules": JSON,
}
_LOCK_PG = text(_LOCK.format(agg="string_agg(list_id::text, ',')")).columns(**_LOCK_TYPES)
_LOCK_SQLITE = text(_LOCK.format(agg="group_concat(list_id)")).columns(**_LOCK_TYPES)
# The rows are written already claimed: one row version and one set of index entries per
# delivery fewer than writing them queued and claiming them after (PostgreSQL's CPU a
# delivery, results included: 24 -> 18 us, bench/claimed_rows.py). WHERE true: SQLite needs
# it between an INSERT's SELECT and its ON CONFLICT. On PostgreSQL the cursor moves in the
# same statement (one round trip fewer a claim); on SQLite in the next.
_CLAIMED = (
    "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, next_attempt_at,"
    " lease_owner, lease_expires_at) SELECT :i, {each}, 'sending', 1, :now, :owner, :lease"
    " FROM {ids} WHERE true ON CONFLICT (issue_id, subscriber_id) DO NOTHING RETURNING id"
)
_MOVE = (
    "UPDATE issue_fanouts SET batch_from = :start, next_subscriber_id = :cursor, done = :done"
    " WHERE issue_id = :i"
)
_CLAIMED_PG = timed(
    f"WITH moved AS ({_MOVE}), written AS ("  # noqa: S608 (constants only)
    + _CLAIMED.format(each="s", ids="unnest(CAST(:ids AS BIGINT[])) AS s")
    + ") SELECT id FROM written",
    "now", "lease",
)  # fmt: skip
_CLAIMED_SQLITE = timed(_CLAIMED.format(each="value", ids="json_each(:ids)"), "now", "lease")


async def take(
    *,
    session: AsyncSession,
    issue_id: int,
    owner: str,
    lease: datetime,
    now: datetime,
    limit: int,
    window: int,
) -> list[int]:
    """Write up to `limit` more deliveries of a batched send, leased to `owner`; their ids.

    The next recipients by subscriber id after the cursor, looked for in a range of ids
    (at most `window` wide, twice the last take's range when that was narrower: a few
    hundred ids of a dense list, so a send to several lists sorts a few hundred rows a
    claim, not the whole rest of the list). A range with no member moves the cursor on to
    the next, up to EMPTY_RANGES of them. [] when the issue has no fan-out left to
    write, is not sending, or has no more members. Runs inside the caller's transaction.
    """
    pg = on_postgresql(session)
    row = (await session.execute(_LOCK_PG if pg else _LOCK_SQLITE, {"i": issue_id})).first()
    if row is None:
        return []
    audience = await fanout.audience_of(session, row.segment_rules)
    lists = [int(x) for x in (row.lists or "").split(",") if x]
    start = cursor = int(row.next_subscriber_id)
    last = int(row.last_subscriber_id)
    span = cursor - int(row.batch_from)
    width = min(window, max(2 * span, limit)) if span > 0 else window
    picked: list[int] = []
    for _ in range(EMPTY_RANGES):
        upto = min(cursor + width, last)
        query = fanout.members(lists, Subscription.subscriber_id, audience=audience,
                               snapshot=row.snapshot_at, after=cursor, upto=upto)  # fmt: skip
        found = list(
            (await session.scalars(query.order_by(Subscription.subscriber_id).limit(limit))).all()
        )
        picked += found
        cursor = found[-1] if len(found) == limit else upto  # all up to there are taken
        if picked or cursor >= last:
            break
        width = min(window, 2 * width)  # a range with no member: a sparse list, look wider
    move = {"i": issue_id, "start": start, "cursor": cursor, "done": cursor >= last}
    if not picked:
        await session.execute(text(_MOVE), move)
        return []
    params = {**move, "now": now, "owner": owner, "lease": lease,
              "ids": picked if pg else json.dumps(picked)}  # fmt: skip
    ids = list((await session.scalars(_CLAIMED_PG if pg else _CLAIMED_SQLITE, params)).all())
    if not pg:
        await session.execute(text(_MOVE), move)
    return ids
