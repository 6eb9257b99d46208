"""The outgoing webhooks API: `/api/v1/webhooks`, their delivery log, replay and test."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.deps import AdminDep, SessionDep, SettingsDep
from app.pagination import Cursor, Limit, RowId, decode_cursor, encode_cursor
from app.webhooks import service
from app.webhooks.models import Webhook
from app.webhooks.schemas import (
    DeliveryOut,
    DeliveryPage,
    WebhookCreated,
    WebhookIn,
    WebhookOut,
    WebhookPage,
    WebhookPatch,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], dependencies=[AdminDep])
WebhookId = RowId
DeliveryId = RowId


def webhook_out(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id, "url": webhook.url, "events": webhook.events,
        "enabled": webhook.enabled, "disabled_reason": webhook.disabled_reason,
        "disabled_at": webhook.disabled_at, "failing_since": webhook.failing_since,
        "consecutive_failures": webhook.consecutive_failures, "created_at": webhook.created_at,
    }  # fmt: skip


@router.post("", status_code=201, response_model=WebhookCreated)
async def create_webhook(data: WebhookIn, session: SessionDep, settings: SettingsDep) -> Any:
    """Register a URL for events; the answer holds the signing secret, shown only now."""
    webhook, secret = await service.create(session=session, settings=settings, data=data)
    return {**webhook_out(webhook), "secret": secret}


@router.get("", response_model=WebhookPage)
async def list_webhooks(session: SessionDep, limit: Limit = 100, cursor: Cursor = None) -> Any:
    """The webhooks, oldest first; a disabled one says why."""
    rows = await service.list_webhooks(session=session, after_id=decode_cursor(cursor), limit=limit)
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": [webhook_out(w) for w in rows],
            "next_cursor": encode_cursor(rows[-1].id) if more else None}  # fmt: skip


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: WebhookId, session: SessionDep) -> Any:
    """One webhook."""
    return webhook_out(await service.get(session=session, webhook_id=webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookOut)
async def patch_webhook(
    webhook_id: WebhookId, data: WebhookPatch, session: SessionDep, settings: SettingsDep
) -> Any:
    """Change the URL or events, or disable and enable it again."""
    webhook = await service.update(
        session=session, settings=settings, webhook_id=webhook_id, data=data
    )
    return webhook_out(webhook)


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: WebhookId, session: SessionDep) -> Response:
    """Delete a webhook and its delivery log."""
    await service.delete_webhook(session=session, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryPage)
async def list_deliveries(
    webhook_id: WebhookId, session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> Any:
    """The log: every delivery, newest first, with each attempt's status, body and error."""
    rows = await service.deliveries(
        session=session, webhook_id=webhook_id, before_id=decode_cursor(cursor), limit=limit
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"items": rows, "next_cursor": encode_cursor(rows[-1]["id"]) if more else None}


@router.post("/{webhook_id}/deliveries/{delivery_id}/replay", status_code=202,
             response_model=DeliveryOut)  # fmt: skip
async def replay_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, session: SessionDep
) -> Any:
    """Send the event of a delivery again (same webhook-id), as a new delivery."""
    new_id = await service.replay(session=session, webhook_id=webhook_id, delivery_id=delivery_id)
    return await _one(session, webhook_id, new_id)


@router.post("/{webhook_id}/test", status_code=202, response_model=DeliveryOut)
async def test_webhook(webhook_id: WebhookId, session: SessionDep) -> Any:
    """Queue a `webhook.test` call to this webhook."""
    new_id = await service.send_test(session=session, webhook_id=webhook_id)
    return await _one(session, webhook_id, new_id)


async def _one(session: Any, webhook_id: int, delivery_id: int) -> Any:
    rows = await service.deliveries(
        session=session, webhook_id=webhook_id, before_id=delivery_id + 1, limit=1
    )
    return rows[0]
