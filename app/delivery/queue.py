"""The delivery queue: claims under leases, results (fan-out: fanout.py; statuses: lifecycle).

Every statement here is set-based: one UPDATE claims a batch, one UPDATE records a batch
of results (a large send's next batch of delivery rows is written just before a claim).
A delivery is claimed by setting `lease_owner`; every result is written only `WHERE
lease_owner = :me AND status = 'sending'`, so a dispatcher that lost its lease (it
stalled, another took over) cannot overwrite the new owner's result. A crash leaves
`sending` rows whose lease expires; `recover_expired` puts them back in the queue, so
no one is ever skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from app import config
from app.db import utcnow
from app.delivery import fanout
from app.delivery.statements import claim_statement
from app.delivery.statements import is_pg as _pg
from app.delivery.statements import timed as _sql

# A batched send (fanout.py) gets its next batch written when fewer than this many claims'
# worth of its deliveries are due: enough to keep the workers busy while it is written.
AHEAD_CLAIMS = 10
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
    # In this transaction: a claim that fails leaves the batch unwritten and the cursor put.
    width = fanout_batch or config.settings.fanout_batch  # the app's setting, from the feeder
    ahead = min(max(limit * AHEAD_CLAIMS, 1), max(width // 4, 1))
    await fanout.expand(session=session, issue_id=issue_id, now=now, ahead=ahead, width=width)
    rows = await session.execute(
        claim_statement(_pg(session), guard=_ISSUE_SENDING),
        {
            "owner": owner,
            "lease": now + timedelta(seconds=lease_seconds),
            "i": issue_id,
            "now": now,
            "n": limit,
        },
    )
    return [r[0] for r in rows]


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


async def load_targets(*, session: AsyncSession, ids: list[int]) -> list[Target]:
    """The recipients of these deliveries, each with whether they may still be sent to."""
    if not ids:
        return []
    in_ids = "= ANY(:ids)" if _pg(session) else "IN :ids"
    stmt = text(
        "SELECT d.id, d.issue_id, d.subscriber_id, d.attempts, s.email, s.name, s.attributes,"  # noqa: S608 (constants only)
        " (s.status = 'active' AND EXISTS (SELECT 1 FROM subscriptions m JOIN issue_lists il"
        " ON il.list_id = m.list_id AND il.issue_id = d.issue_id"
        " WHERE m.subscriber_id = d.subscriber_id AND m.status = 'confirmed')) AS eligible"
        f" FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id WHERE d.id {in_ids}"
    )
    if not _pg(session):
        stmt = stmt.bindparams(bindparam("ids", expanding=True))
    rows = await session.execute(stmt, {"ids": ids})
    out = []
    for r in rows:
        attrs = r.attributes
        if isinstance(attrs, str):  # SQLite hands JSON back as text in a raw query
            import json

            attrs = json.loads(attrs)
        out.append(
            Target(
                r.id,
                r.issue_id,
                r.subscriber_id,
                r.attempts,
                r.email or "",
                r.name or "",
                attrs or {},
                bool(r.eligible) and r.email is not None,
            )  # fmt: skip
        )
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


async def record(*, session: AsyncSession, owner: str, results: list[Result]) -> int:
    """Write a batch of results in one statement, only where this owner still holds the lease."""
    if not results:
        return 0
    if _pg(session):
        stmt = text(
            f"UPDATE deliveries AS d SET{_RECORD_SET} FROM unnest(CAST(:ids AS BIGINT[]),"
            " CAST(:statuses AS TEXT[]), CAST(:refunds AS INT[]),"
            " CAST(:next_ats AS TIMESTAMPTZ[]), CAST(:errs AS TEXT[]), CAST(:mids AS TEXT[]),"
            " CAST(:servers AS TEXT[]), CAST(:sent_ats AS TIMESTAMPTZ[]))"
            " AS v(id, status, refund, next_at, err, mid, server, sent_at)"
            " WHERE d.id = v.id AND d.lease_owner = :owner AND d.status = 'sending'"
        )
        res = await session.execute(
            stmt,
            {
                "ids": [r.id for r in results],
                "statuses": [r.status for r in results],
                "refunds": [r.refund for r in results],
                "next_ats": [r.next_attempt_at for r in results],
                "errs": [r.error for r in results],
                "mids": [r.message_id for r in results],
                "servers": [r.server for r in results],
                "sent_ats": [r.sent_at for r in results],
                "owner": owner,
            },
        )
        return int(res.rowcount or 0)  # type: ignore[attr-defined]
    # SQLite: one prepared statement executed per row, all in one transaction (no round trips).
    stmt = _sql(
        "UPDATE deliveries AS d SET"
        + _RECORD_SET.replace("v.", ":v_").replace("d.", "")
        + " WHERE id = :v_id AND lease_owner = :owner AND status = 'sending'",
        "v_next_at",
        "v_sent_at",
    )
    params = [
        {
            "v_id": r.id,
            "v_status": r.status,
            "v_refund": r.refund,
            "v_next_at": r.next_attempt_at,
            "v_err": r.error,
            "v_mid": r.message_id,
            "v_server": r.server,
            "v_sent_at": r.sent_at,
            "owner": owner,
        }  # fmt: skip
        for r in results
    ]
    res = await session.execute(stmt, params)
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
