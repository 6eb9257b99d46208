"""The queue statements of transactional messages: claim their deliveries, load what to send.

A message is a row of `deliveries` under the system issue (models.MESSAGES_ISSUE; why,
in app/messages/service.py), so the claim is the bulk one's with that issue id: the same
lease columns (`status = 'sending'`, `lease_owner`, `lease_expires_at`), the same queue
index (issue_id, status, next_attempt_at) and SKIP LOCKED on PostgreSQL. Results, lease
renewal and crash recovery are queue.record, queue.extend_leases and queue.recover_expired
unchanged: they key on delivery ids and the lease owner, whatever the issue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import on_postgresql, utcnow
from app.delivery.statements import claim_statement, timed
from app.messages.store import messages
from app.models import MESSAGES_ISSUE, Delivery, Subscriber, Suppression
from app.subscribers.addresses import email_key, suppression_hash

_LOOK = timed(
    "SELECT 1 FROM deliveries WHERE issue_id = :i AND status = 'queued'"
    " AND next_attempt_at <= :now LIMIT 1",
    "now",
)


async def claim(
    *, session: AsyncSession, owner: str, limit: int, lease_seconds: float
) -> list[int]:
    """Claim up to `limit` due message deliveries, oldest due first; their ids."""
    now = utcnow()
    # A look first, ten times a second in every dispatcher and nearly always empty: one
    # indexed read. It spares SQLite's one write lock, and PostgreSQL an UPDATE planned
    # and run for nothing (with `IN (subquery)`, the ORM's form this replaces, a hash of
    # the whole deliveries table once fresh statistics after a large fan-out favour it).
    if await session.scalar(_LOOK, {"i": MESSAGES_ISSUE, "now": now}) is None:
        return []
    rows = await session.execute(
        claim_statement(on_postgresql(session)),
        {"owner": owner, "lease": now + timedelta(seconds=lease_seconds),
         "i": MESSAGES_ISSUE, "now": now, "n": limit},
    )  # fmt: skip
    return [r[0] for r in rows]


@dataclass(frozen=True)
class MessageTarget:
    """A claimed message delivery with its request, and why it may not go (None: it may)."""

    id: int
    attempts: int
    email: str
    template: str
    subject: str
    data: dict[str, Any]
    route: tuple[str, ...] | None
    refusal: str | None


async def load(*, session: AsyncSession, ids: list[int]) -> list[MessageTarget]:
    """The requests of these deliveries, each checked again just before it goes."""
    if not ids:
        return []
    rows = list(
        await session.execute(
            select(Delivery.id, Delivery.attempts, messages.c.email, messages.c.template,
                   messages.c.subject, messages.c.data, messages.c.smtp_route)
            .join(messages, messages.c.id == Delivery.message_ref)
            .where(Delivery.id.in_(ids))
        )
    )  # fmt: skip
    keys = {email_key(r.email) for r in rows}
    blocked = set(
        await session.scalars(
            select(Subscriber.email_key).where(
                Subscriber.email_key.in_(keys), Subscriber.status == "blocklisted"
            )
        )
    )
    hashes = {suppression_hash(k): k for k in keys}
    erased = {
        hashes[h]
        for h in await session.scalars(
            select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes))
        )
    }
    out = []
    for r in rows:
        key = email_key(r.email)
        why = None
        if key in blocked:
            why = "the address is blocklisted"
        elif key in erased:
            why = "the address was erased and is suppressed"
        route = tuple(r.smtp_route) if r.smtp_route else None
        out.append(MessageTarget(r.id, r.attempts, r.email, r.template, r.subject,
                                 dict(r.data or {}), route, why))  # fmt: skip
    return out
