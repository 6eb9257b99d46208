"""Transactional messages: accept once per idempotency key, refuse who may not be written to.

Why a message is a delivery: the contract's promise for bulk (claimed under a lease, a
worker killed mid-send loses no one, retries and back-off, the per-recipient log, DKIM)
is the dispatcher's, so a message takes the same road rather than a second one beside
it. The request writes, in its own transaction, a `messages` row (what it carried) and a
`deliveries` row with `message_ref` = that row's id, which the dispatcher's feeder claims
ahead of every bulk batch (app/delivery/message_feed.py).

Why issue_id 0, the system issue (models.MESSAGES_ISSUE, status 'system', made by
migration 0014 and again here if missing): deliveries carry no foreign keys, but bounces
do (bounces.issue_id -> issues.id), and a bounce found through a message's VERP token or
Message-ID records its delivery's issue_id, so that id must be a real row. Ids start at 1,
so no list, archive, API path or console page shows it; nothing schedules, sends or
finishes it (it is never 'sending': the dispatcher's board treats it as always open).
The delivery's subscriber_id is NULL (a second message to someone would collide on the
(issue_id, subscriber_id) key); the address and subscriber are the message row's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.delivery.routes import check_route
from app.errors import Conflict, NotFound, invalid
from app.issues import compose
from app.messages.schemas import MessageIn, ToSubscriber
from app.messages.store import messages, render
from app.models import MESSAGES_ISSUE, Delivery, Issue, Subscriber, Suppression
from app.subscribers.addresses import email_key, suppression_hash

# A delivery's statuses as a message's: a bounce or a skip means it did not arrive.
SHOWN = {"queued": "queued", "sending": "sending", "sent": "sent", "complained": "sent"}


def _hash(data: MessageIn) -> str:
    body = data.model_dump(mode="json")
    if body.get("smtp_route") is None:  # a body from before routes hashes as it did then
        body.pop("smtp_route", None)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def refusal(session: AsyncSession, email: str) -> str | None:
    """Why this address may not be written to (blocklisted, erased), or None."""
    key = email_key(email)
    status = await session.scalar(select(Subscriber.status).where(Subscriber.email_key == key))
    if status == "blocklisted":
        return "the address is blocklisted"
    hashed = suppression_hash(key)
    if await session.scalar(select(Suppression.email_hash).where(Suppression.email_hash == hashed)):
        return "the address was erased and is suppressed"
    return None


async def _recipient(session: AsyncSession, to: str | ToSubscriber) -> tuple[str, int | None]:
    if isinstance(to, str):
        key = email_key(to)
        found = await session.scalar(select(Subscriber.id).where(Subscriber.email_key == key))
        return to, found
    email = await session.scalar(select(Subscriber.email).where(Subscriber.id == to.subscriber_id))
    if email is None:
        raise invalid("to", f"subscriber {to.subscriber_id} not found")
    return email, to.subscriber_id


async def system_issue(session: AsyncSession) -> None:
    """Make the system issue the deliveries of messages belong to, if it is missing."""
    if await session.scalar(select(Issue.id).where(Issue.id == MESSAGES_ISSUE)) is not None:
        return
    async with session.begin_nested():
        await session.execute(
            insert(Issue).values(id=MESSAGES_ISSUE, subject="Transactional messages", body="",
                                 template="message", status="system", recipients=0,
                                 in_archive=False, track_opens=False, track_clicks=False)
        )  # fmt: skip


async def _first_answer(session: AsyncSession, key: str, digest: str) -> dict[str, Any] | None:
    first = (
        await session.execute(
            select(messages.c.id, messages.c.request_hash).where(messages.c.idempotency_key == key)
        )
    ).first()
    if first is None:
        return None
    if first.request_hash != digest:
        raise invalid("Idempotency-Key", "this key was used with another body", where="header")
    # The first answer itself (CONTRACT), whatever the worker has done since: a client that
    # retries a lost response sees what it would have seen; GET /messages/{id} tells more.
    return {"id": first.id, "status": "queued"}


async def create(
    *, session: AsyncSession, settings: Settings, data: MessageIn, key: str | None
) -> dict[str, Any]:
    """Queue one message; the same key answers its first answer, another body is a 422."""
    digest = _hash(data)
    if key is not None:
        if not 1 <= len(key) <= 200:
            raise invalid("Idempotency-Key", "must be 1 to 200 characters", where="header")
        if (first := await _first_answer(session, key, digest)) is not None:
            return first
    check_route(settings.smtp_url, data.smtp_route)
    email, subscriber_id = await _recipient(session, data.to)
    why = await refusal(session, email)
    if why is not None:
        raise Conflict(f"cannot send to this address: {why}")
    try:  # rendered once now: a template that cannot render is the caller's 422, not a retry
        await asyncio.to_thread(
            render, template=data.template, subject=data.subject, data=data.data, email=email,
            from_addr=settings.from_, message_id=compose.message_id(settings, issue_id=0,
                                                                    delivery_id=0),
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise invalid("template", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any sandbox or header error is the template's
        raise invalid("template", f"the template does not render: {exc}") from None
    await system_issue(session)
    now = utcnow()
    try:
        async with session.begin_nested():  # two requests racing on one key: one row
            message_id = (
                await session.execute(
                    messages.insert()
                    .values(idempotency_key=key, request_hash=digest, email=email,
                            subscriber_id=subscriber_id, template=data.template,
                            subject=data.subject, data=data.data, smtp_route=data.smtp_route,
                            created_at=now)
                    .returning(messages.c.id)
                )
            ).scalar_one()  # fmt: skip
            await session.execute(
                insert(Delivery).values(issue_id=MESSAGES_ISSUE, subscriber_id=None,
                                        status="queued", attempts=0, next_attempt_at=now,
                                        message_ref=message_id)
            )  # fmt: skip
            return {"id": message_id, "status": "queued"}
    except IntegrityError:
        if key is None:
            raise
        return await create(session=session, settings=settings, data=data, key=key)


async def get(*, session: AsyncSession, message_id: int) -> dict[str, Any]:
    """A message's status for GET /api/v1/messages/{id}, read from its delivery; 404 if unknown."""
    row = (
        await session.execute(
            select(messages.c.id, Delivery.status, Delivery.attempts, Delivery.last_error,
                   Delivery.sent_at)
            .join(Delivery, Delivery.message_ref == messages.c.id)
            .where(Delivery.message_ref == message_id)  # the partial unique index
        )
    ).first()  # fmt: skip
    if row is None:
        raise NotFound(f"message {message_id} not found")
    shown = dict(row._mapping)
    if row.status == "bounced" and not row.last_error:
        shown["last_error"] = "bounced"
    shown["status"] = SHOWN.get(row.status, "failed")
    return shown
