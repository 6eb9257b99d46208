"""Transactional messages: accept once per idempotency key, refuse who may not be written to.

A message is queued in the `messages` table in the request's transaction and sent by the
workers' MessageSender (sender.py) under a lease, so a worker killed mid-send loses none.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, NotFound, invalid
from app.messages.schemas import MessageIn, ToSubscriber
from app.messages.store import messages, render
from app.models import Subscriber, Suppression
from app.subscribers.addresses import email_key, suppression_hash


def _hash(data: MessageIn) -> str:
    canonical = json.dumps(data.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
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


async def create(
    *, session: AsyncSession, settings: Settings, data: MessageIn, key: str | None
) -> dict[str, Any]:
    """Queue one message; the same key answers its first answer, another body is a 422."""
    digest = _hash(data)
    if key is not None:
        if not 1 <= len(key) <= 200:
            raise invalid("Idempotency-Key", "must be 1 to 200 characters", where="header")
        first = (
            await session.execute(
                select(messages.c.id, messages.c.status, messages.c.request_hash).where(
                    messages.c.idempotency_key == key
                )
            )
        ).first()
        if first is not None:
            if first.request_hash != digest:
                raise invalid("Idempotency-Key", "this key was used with another body",
                              where="header")  # fmt: skip
            return {"id": first.id, "status": first.status}
    email, subscriber_id = await _recipient(session, data.to)
    why = await refusal(session, email)
    if why is not None:
        raise Conflict(f"cannot send to this address: {why}")
    try:  # rendered once now: a template that cannot render is the caller's 422, not a retry
        await asyncio.to_thread(render, template=data.template, subject=data.subject,
                                data=data.data, email=email, from_addr=settings.from_)  # fmt: skip
    except FileNotFoundError as exc:
        raise invalid("template", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any sandbox or header error is the template's
        raise invalid("template", f"the template does not render: {exc}") from None
    now = utcnow()
    try:
        async with session.begin_nested():  # two requests racing on one key: one row
            row = await session.execute(
                messages.insert()
                .values(idempotency_key=key, request_hash=digest, email=email,
                        subscriber_id=subscriber_id, template=data.template,
                        subject=data.subject, data=data.data, status="queued", attempts=0,
                        next_attempt_at=now, created_at=now)
                .returning(messages.c.id)
            )  # fmt: skip
            return {"id": row.scalar_one(), "status": "queued"}
    except IntegrityError:
        if key is None:
            raise
        return await create(session=session, settings=settings, data=data, key=key)


async def get(*, session: AsyncSession, message_id: int) -> dict[str, Any]:
    """A message's status for GET /api/v1/messages/{id}; 404 if unknown."""
    row = (
        await session.execute(
            select(messages.c.id, messages.c.status, messages.c.attempts,
                   messages.c.last_error, messages.c.sent_at)
            .where(messages.c.id == message_id)
        )
    ).first()  # fmt: skip
    if row is None:
        raise NotFound(f"message {message_id} not found")
    return dict(row._mapping)
