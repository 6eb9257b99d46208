"""The delivery queue: claims under leases, results (fan-out: fanout.py; statuses: lifecycle).

Every statement here is set-based: one UPDATE claims a batch, one UPDATE records a batch
of results (a large send's next deliveries are written already claimed: takes.py).
A delivery is claimed by setting `lease_owner`; every result is written only `WHERE
lease_owner = :me AND status = 'sending'`, so a dispatcher that lost its lease (it
stalled, another took over) cannot overwrite the new owner's result. A crash leaves
`sending` rows whose lease expires; `recover_expired` puts them back in the queue, so
no one is ever skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import config
from app.db import on_postgresql, utcnow
from app.delivery import takes
from app.delivery.statements import claim_statement, driver_fetch, sqlite_time, storable_text
from app.delivery.statements import timed as _sql

_ISSUE_SENDING = (
    " AND EXISTS (SELECT 1 FROM issues WHERE id = :i AND status IN ('sending', 'active'))"
)


async def cancel_deliveries(*, session: AsyncSession, issue_id: int) -> int:
    """Cancel what is still waiting; deliveries in flight finish and are logged as they end."""
    result = await session.execute(
        _sql(
            "UPDATE deliveries SET status = 'cancelled', lease_owner = NULL,"
            " lease_expires_at = NULL WHERE issue_id = :i AND (status = 'queued'"
            " OR (status = 'sending' AND lease_expires_at < :now))",
            "now",
        ),
        {"i": issue_id, "now": utcnow()},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def claim(
    *,
    session: AsyncSession,
    issue_id: int,
    owner: str,
    limit: int,
    lease_seconds: float,
    fanout_batch: int | None = None,
) -> list[int]:
    """Claim up to `limit` due deliveries of one issue that is still sending; their ids.

    Due: next_attempt_at has come. A triggered issue's (active) deliveries wait there until
    confirmed_at + after_seconds (app/issues/triggers.py), under the same index.
    """
    now = utcnow()
    lease = now + timedelta(seconds=lease_seconds)
    rows = await session.execute(
        claim_statement(on_postgresql(session), guard=_ISSUE_SENDING),
        {"owner": owner, "lease": lease, "i": issue_id, "now": now, "n": limit},
    )
    ids = [r[0] for r in rows]
    if len(ids) < limit:
        # A batched send's next recipients, written already claimed (takes.py), in this
        # transaction: a claim that fails leaves them unwritten and the cursor where it was.
        window = fanout_batch or config.settings.fanout_batch  # the app's, from the feeder
        ids += await takes.take(session=session, issue_id=issue_id, owner=owner, lease=lease,
                                 now=now, limit=limit - len(ids), window=window)  # fmt: skip
    return ids


async def extend_leases(*, session: AsyncSession, owner: str, lease_seconds: float) -> None:
    """Keep this dispatcher's claims alive while it works through them."""
    await session.execute(
        _sql(
            "UPDATE deliveries SET lease_expires_at = :lease"
            " WHERE status = 'sending' AND lease_owner = :owner",
            "lease",
        ),
        {"lease": utcnow() + timedelta(seconds=lease_seconds), "owner": owner},
    )


async def recover_expired(*, session: AsyncSession) -> int:
    """Put deliveries whose dispatcher died (lease expired) back in the queue."""
    result = await session.execute(
        _sql(
            "UPDATE deliveries SET status = 'queued', lease_owner = NULL,"
            " lease_expires_at = NULL, next_attempt_at = :now"
            " WHERE status = 'sending' AND lease_expires_at < :now",
            "now",
        ),
        {"now": utcnow()},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Target:
    """A claimed delivery with what is needed to send it, checked just before it goes."""

    id: int
    issue_id: int
    subscriber_id: int | None
    attempts: int
    email: str
    name: str
    attributes: dict[str, Any]
    eligible: bool


_TARGETS = (
    "SELECT d.id, d.issue_id, d.subscriber_id, d.attempts, s.email, s.name, s.attributes,"
    " (s.status = 'active' AND EXISTS (SELECT 1 FROM subscriptions m JOIN issue_lists il"
    " ON il.list_id = m.list_id AND il.issue_id = d.issue_id"
    " WHERE m.subscriber_id = d.subscriber_id AND m.status = 'confirmed')) AS eligible"
    " FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id "
)
# SQLite: the ids as one JSON parameter; an expanding IN would bind (and SQLAlchemy
# process) 50 values a chunk and compile a statement per chunk length.
_TARGETS_SQLITE = text(_TARGETS + "IN (SELECT value FROM json_each(:ids))")  # noqa: S608
_TARGETS_PG_SA = text(_TARGETS + "= ANY(:ids)")  # in a transaction: SQLAlchemy's own path


async def load_targets(*, session: AsyncSession, ids: list[int]) -> list[Target]:
    """The recipients of these deliveries, each with whether they may still be sent to."""
    if not ids:
        return []
    rows: Any = await driver_fetch(session, _TARGETS + "= ANY($1::bigint[])", ids)
    if rows is None:
        pg = on_postgresql(session)
        stmt = _TARGETS_PG_SA if pg else _TARGETS_SQLITE
        rows = await session.execute(stmt, {"ids": ids if pg else json.dumps(ids)})
    out = []
    for i, issue_id, subscriber_id, attempts, email, name, attrs, eligible in rows:
        if isinstance(attrs, str):  # JSON as text: SQLite's raw queries, asyncpg's own
            attrs = json.loads(attrs)
        out.append(
            Target(i, issue_id, subscriber_id, attempts, email or "", name or "", attrs or {},
                   bool(eligible) and email is not None)
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class Result:
    """The outcome of one claimed delivery, written back in a batch."""

    id: int
    status: str  # sent | queued | failed | skipped | cancelled
    refund: int = 0  # 1: this claim does not count as an attempt (throttled, released)
    next_attempt_at: datetime | None = None
    error: str | None = None
    message_id: str | None = None
    server: str | None = None
    sent_at: datetime | None = None


_RECORD_SET = (
    " status = v.status, attempts = d.attempts - v.refund,"
    " next_attempt_at = COALESCE(v.next_at, d.next_attempt_at),"
    " last_error = CASE WHEN v.status = 'sent' THEN NULL ELSE COALESCE(v.err, d.last_error) END,"
    " message_id = COALESCE(v.mid, d.message_id), smtp_server = COALESCE(v.server, d.smtp_server),"
    " sent_at = COALESCE(v.sent_at, d.sent_at), lease_owner = NULL, lease_expires_at = NULL"
)


# One UPDATE of a batch's results, from its columns: on PostgreSQL as arrays (asyncpg's
# own form on autocommit sessions, see driver_fetch; else SQLAlchemy's, whose text()
# reads "::" as no parameter: CAST instead), on SQLite as one JSON array of rows.
_RESULT = ("id", "status", "refund", "next_at", "err", "mid", "server", "sent_at")
_RECORD_NAMES = ("ids", "statuses", "refunds", "next_ats", "errs", "mids", "servers", "sent_ats")
_RECORD_TYPES = ("BIGINT", "TEXT", "INT", "TIMESTAMPTZ", "TEXT", "TEXT", "TEXT", "TIMESTAMPTZ")
_RECORD_UPDATE = f"UPDATE deliveries AS d SET{_RECORD_SET} FROM "
_RECORD_WHERE = " WHERE d.id = v.id AND {plus}d.lease_owner = {owner} AND d.status = 'sending'"
_AS_V = f" AS v({', '.join(_RESULT)})"
_RECORD_PG = (
    _RECORD_UPDATE
    + f"unnest({', '.join(f'${i}::{t}[]' for i, t in enumerate(_RECORD_TYPES, 1))})"
    + _AS_V
    + _RECORD_WHERE.format(plus="", owner="$9")
)
_RECORD_PG_SA = text(
    _RECORD_UPDATE
    + "unnest("
    + ", ".join(f"CAST(:{n} AS {t}[])" for n, t in zip(_RECORD_NAMES, _RECORD_TYPES, strict=True))
    + ")"
    + _AS_V
    + _RECORD_WHERE.format(plus="", owner=":owner")
)
_RECORD_SQLITE = text(
    _RECORD_UPDATE  # noqa: S608 (constants only)
    + "(SELECT "
    + ", ".join(f"json_extract(value, '$[{i}]') AS {c}" for i, c in enumerate(_RESULT))
    + " FROM json_each(:rows)) AS v"
    # The unary plus keeps SQLite off the in-flight index, which would make every row this
    # worker holds the outer loop, the JSON scanned for each (5 ms a message, measured).
    + _RECORD_WHERE.format(plus="+", owner=":owner")
)


async def record(*, session: AsyncSession, owner: str, results: list[Result]) -> int:
    """Write a batch of results in one statement, only where this owner still holds the lease."""
    if not results:
        return 0
    errors = [storable_text(r.error) for r in results]
    if on_postgresql(session):
        columns = [
            [r.id for r in results],
            [r.status for r in results],
            [r.refund for r in results],
            [r.next_attempt_at for r in results],
            errors,
            [r.message_id for r in results],
            [r.server for r in results],
            [r.sent_at for r in results],
        ]
        written = await driver_fetch(session, _RECORD_PG + " RETURNING 1", *columns, owner)
        if written is not None:
            return len(written)
        arrays = dict(zip(_RECORD_NAMES, columns, strict=True))
        res = await session.execute(_RECORD_PG_SA, {**arrays, "owner": owner})
        return int(res.rowcount or 0)  # type: ignore[attr-defined]
    # SQLite: the batch as one JSON parameter, unpacked by json_each; times as SQLAlchemy
    # stores them (naive UTC, six-digit fractions) so that they compare as before.
    rows = json.dumps([
        [r.id, r.status, r.refund, sqlite_time(r.next_attempt_at), error, r.message_id,
         r.server, sqlite_time(r.sent_at)]
        for r, error in zip(results, errors, strict=True)
    ])  # fmt: skip
    res = await session.execute(_RECORD_SQLITE, {"rows": rows, "owner": owner})
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


async def issue_statuses(*, session: AsyncSession, held: set[int]) -> dict[int, str]:
    """The issues being sent, plus the current status of those this dispatcher holds.

    An active triggered issue is shown as sending: the dispatcher sends it like any other.
    """
    rows = await session.execute(
        text("SELECT id, CASE WHEN status = 'active' THEN 'sending' ELSE status END"  # noqa: S608 (constants only)
             " FROM issues WHERE status IN ('sending', 'active')"
             + (f" OR id IN ({','.join(str(int(i)) for i in held)})" if held else ""))
    )  # fmt: skip
    return {r[0]: r[1] for r in rows}


async def cancel_released(*, session: AsyncSession) -> None:
    """Deliveries released back to the queue after their issue was cancelled follow it."""
    await session.execute(
        text(
            "UPDATE deliveries SET status = 'cancelled' WHERE status = 'queued' AND issue_id IN"
            " (SELECT id FROM issues WHERE status = 'cancelled')"
        )
    )


async def sent_per_second(*, session: AsyncSession, seconds: int = 60) -> float:
    """Messages sent per second over the last `seconds`, by every dispatcher (the gauge)."""
    since = utcnow() - timedelta(seconds=seconds)
    # Restricted to issues still sending or just finished, so the (issue, status) index
    # serves it rather than a scan of every delivery ever made.
    value = await session.scalar(
        _sql(
            "SELECT count(*) FROM deliveries WHERE status = 'sent' AND sent_at >= :since"
            " AND issue_id IN (SELECT id FROM issues WHERE status IN ('sending', 'paused')"
            " OR finished_at >= :since)",
            "since",
        ),
        {"since": since},
    )
    return int(value or 0) / seconds


async def queue_depth(*, session: AsyncSession) -> int:
    """Deliveries queued or in flight, across every issue (for the metrics gauge)."""
    # Only issues that can still have work are looked at, so the (issue, status) index
    # serves this instead of a scan of every delivery ever made.
    value = await session.scalar(
        text(
            "SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending') AND issue_id IN"
            " (SELECT id FROM issues WHERE status IN ('sending', 'paused', 'cancelled'))"
        )
    )
    return int(value or 0)
