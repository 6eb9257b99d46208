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

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import utcnow
from app.messages.store import messages
from app.models import MESSAGES_ISSUE, Delivery, Subscriber, Suppression
from app.subscribers.addresses import email_key, suppression_hash


def _due(now: Any) -> Any:
    return (
        (Delivery.issue_id == MESSAGES_ISSUE)
        & (Delivery.status == "queued")
        & (Delivery.next_attempt_at <= now)
    )


async def claim(
    *, session: AsyncSession, owner: str, limit: int, lease_seconds: float
) -> list[int]:
    """Claim up to `limit` due message deliveries, oldest due first; their ids."""
    now = utcnow()
    pg = session.get_bind().dialect.name == "postgresql"
    if not pg:
        # A look first: an idle dispatcher must not take SQLite's one write lock ten
        # times a second (PostgreSQL's UPDATE that matches nothing locks nothing).
        if await session.scalar(select(Delivery.id).where(_due(now)).limit(1)) is None:
            return []
    ids = select(Delivery.id).where(_due(now)).order_by(Delivery.next_attempt_at).limit(limit)
    if pg:
        ids = ids.with_for_update(skip_locked=True)
    rows = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids.scalar_subquery()))
        .values(status="sending", lease_owner=owner, attempts=Delivery.attempts + 1,
                lease_expires_at=now + timedelta(seconds=lease_seconds))
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
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
