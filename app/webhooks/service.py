"""Webhooks: register, list, change, delete; the delivery log; replay and test calls."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, NotFound, invalid
from app.webhooks import addresses, signing
from app.webhooks.events import EVENTS, TEST_EVENT, forget_subscriptions, new_event_id
from app.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent
from app.webhooks.schemas import WebhookIn, WebhookPatch

MAX_ROW_ID = 2**31 - 1  # the ids are 32-bit integers; a larger cursor binds no statement


def _events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise invalid("events", f"unknown event {unknown[0]!r}; one of {', '.join(EVENTS)}")
    return list(dict.fromkeys(events))


async def create(
    *, session: AsyncSession, settings: Settings, data: WebhookIn
) -> tuple[Webhook, str]:
    """A new webhook and its secret (the only time it is shown)."""
    events = _events(data.events)
    url = await addresses.check_url(data.url, allow_private=settings.webhook_allow_private)
    secret = signing.new_secret()
    webhook = Webhook(
        url=url, events=events, enabled=True, consecutive_failures=0,
        secret_sealed=signing.seal(secret, secret_key=settings.secret_key_value),
    )  # fmt: skip
    session.add(webhook)
    await session.flush()
    forget_subscriptions()
    return webhook, secret


async def get(*, session: AsyncSession, webhook_id: int) -> Webhook:
    webhook = await session.get(Webhook, webhook_id)
    if webhook is None:
        raise NotFound("no webhook with this id")
    return webhook


async def list_webhooks(
    *, session: AsyncSession, after_id: int | None, limit: int
) -> list[Webhook]:
    """Webhooks oldest first, `limit + 1` of them after `after_id`."""
    if after_id is not None and after_id >= MAX_ROW_ID:
        return []
    stmt = select(Webhook).order_by(Webhook.id).limit(limit + 1)
    if after_id is not None:
        stmt = stmt.where(Webhook.id > after_id)
    return list(await session.scalars(stmt))


async def update(
    *, session: AsyncSession, settings: Settings, webhook_id: int, data: WebhookPatch
) -> Webhook:
    """Change a webhook; enabling it again clears its failure record."""
    webhook = await get(session=session, webhook_id=webhook_id)
    if data.url is not None:
        allow = settings.webhook_allow_private
        webhook.url = await addresses.check_url(data.url, allow_private=allow)
    if data.events is not None:
        webhook.events = _events(data.events)
    if data.enabled is True and not webhook.enabled:
        webhook.enabled, webhook.disabled_reason, webhook.disabled_at = True, None, None
        webhook.failing_since, webhook.consecutive_failures = None, 0
    elif data.enabled is False and webhook.enabled:
        webhook.enabled, webhook.disabled_at = False, utcnow()
        webhook.disabled_reason = "disabled by hand"
    webhook.updated_at = utcnow()
    await session.flush()
    forget_subscriptions()
    return webhook


async def delete_webhook(*, session: AsyncSession, webhook_id: int) -> None:
    """Delete a webhook with its deliveries and their log."""
    webhook = await get(session=session, webhook_id=webhook_id)
    ids = select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == webhook.id)
    await session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
    await session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook.id))
    await session.delete(webhook)
    await session.flush()
    forget_subscriptions()


async def deliveries(
    *, session: AsyncSession, webhook_id: int, before_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """A webhook's deliveries newest first (`limit + 1`), each with its attempts."""
    await get(session=session, webhook_id=webhook_id)
    stmt = (
        select(WebhookDelivery, WebhookEvent.type)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if before_id is not None and before_id <= MAX_ROW_ID:  # past the 32-bit ids: every row
        stmt = stmt.where(WebhookDelivery.id < before_id)
    rows = (await session.execute(stmt)).all()
    ids = [d.id for d, _ in rows]
    log: dict[int, list[WebhookAttempt]] = {i: [] for i in ids}
    if ids:
        attempts = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(ids))
            .order_by(WebhookAttempt.id)
        )
        for attempt in attempts:
            log[attempt.delivery_id].append(attempt)
    return [
        {"id": d.id, "event_id": d.event_id, "event_type": kind, "status": d.status,
         "attempts": d.attempts, "replay_of": d.replay_of, "created_at": d.created_at,
         "finished_at": d.finished_at,
         "next_attempt_at": d.next_attempt_at if d.status == "pending" else None,
         "log": [{"attempted_at": a.attempted_at, "status_code": a.status_code,
                  "response_body": a.response_body, "error": a.error,
                  "duration_ms": a.duration_ms} for a in log[d.id]]}
        for d, kind in rows
    ]  # fmt: skip


async def replay(*, session: AsyncSession, webhook_id: int, delivery_id: int) -> int:
    """Send a delivery's event to its webhook again, as a new delivery; its id."""
    webhook = await get(session=session, webhook_id=webhook_id)
    original = await session.get(WebhookDelivery, delivery_id)
    if original is None or original.webhook_id != webhook.id:
        raise NotFound("no delivery with this id for this webhook")
    return await _queue(session, webhook, original.event_id, replay_of=original.id)


async def send_test(*, session: AsyncSession, webhook_id: int) -> int:
    """Queue a `webhook.test` event for this webhook alone; the delivery's id."""
    webhook = await get(session=session, webhook_id=webhook_id)
    event_id = new_event_id()
    data = {"webhook_id": webhook.id, "message": "a test call from Tidings"}
    await session.execute(
        insert(WebhookEvent).values(id=event_id, type=TEST_EVENT, data=data,
                                    created_at=utcnow(), fanned_out=True)
    )  # fmt: skip
    return await _queue(session, webhook, event_id, replay_of=None)


async def _queue(
    session: AsyncSession, webhook: Webhook, event_id: str, *, replay_of: int | None
) -> int:
    if not webhook.enabled:
        raise Conflict("this webhook is disabled; enable it first (PATCH enabled: true)")
    now = utcnow()
    delivery = WebhookDelivery(
        webhook_id=webhook.id, event_id=event_id, status="pending", attempts=0,
        next_attempt_at=now, created_at=now, replay_of=replay_of,
    )  # fmt: skip
    session.add(delivery)
    await session.flush()
    return delivery.id
