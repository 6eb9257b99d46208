"""Console pages of outgoing webhooks: register, the delivery log, replay, enable/disable.

The same service as /api/v1/webhooks. Owners and editors manage; a viewer reads. The
signing secret is shown once, on the page that answers the creation, never again.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.console.audience import can_edit, field_errors, read_form
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep, SettingsDep
from app.errors import DomainError
from app.webhooks import service
from app.webhooks.events import EVENTS
from app.webhooks.schemas import WebhookIn, WebhookPatch

router = APIRouter(prefix="/admin", tags=["console"])
MAX_SHOWN = 200
LOG_SHOWN = 50


async def _index(
    request: Request, session: Any, user: Any, *, values: dict[str, Any] | None = None,
    error: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    webhooks = await service.list_webhooks(session=session, after_id=None, limit=MAX_SHOWN)
    return page(
        request, "console/webhook_index.html", webhooks=webhooks[:MAX_SHOWN], events=EVENTS,
        values=values or {"url": "", "events": []}, error=error, can_edit=can_edit(user),
        status_code=status_code,
    )  # fmt: skip


@router.get("/webhooks")
async def webhooks_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Every webhook with its state (a warning for the disabled and failing), and a form."""
    return await _index(request, session, user)


@router.post("/webhooks")
async def create_webhook(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """Register a webhook; the answer shows its secret, once."""
    require_role(user, "editor")
    form, many = await read_form(request)
    values = {"url": form.get("url", "").strip(), "events": many.get("events", [])}
    try:
        data = WebhookIn.model_validate(values)
        webhook, secret = await service.create(session=session, settings=settings, data=data)
    except ValidationError as exc:
        error = "; ".join(field_errors(exc, {"url": "URL", "events": "Events"}).values())
        return await _index(request, session, user, values=values, error=error, status_code=422)
    except DomainError as exc:
        return await _index(request, session, user, values=values, error=exc.detail,
                            status_code=exc.status_code)  # fmt: skip
    return page(request, "console/webhook_created.html", webhook=webhook, secret=secret,
                status_code=201)  # fmt: skip


@router.get("/webhooks/{webhook_id}")
async def webhook_page(
    request: Request, webhook_id: int, session: SessionDep, user: ConsoleUser
) -> Response:
    """One webhook: its state and reason, and the log of its latest deliveries."""
    webhook = await service.get(session=session, webhook_id=webhook_id)
    log = await service.deliveries(
        session=session, webhook_id=webhook_id, before_id=None, limit=LOG_SHOWN
    )
    return page(request, "console/webhook_page.html", webhook=webhook, log=log[:LOG_SHOWN],
                can_edit=can_edit(user))  # fmt: skip


@router.post("/webhooks/{webhook_id}/{action}")
async def webhook_action(
    request: Request, webhook_id: int, action: str, session: SessionDep,
    settings: SettingsDep, user: ConsoleUser,
) -> Response:  # fmt: skip
    """Enable, disable, test or delete a webhook."""
    require_role(user, "editor")
    here = f"/admin/webhooks/{webhook_id}"
    if action in ("enable", "disable"):
        patch = WebhookPatch(enabled=action == "enable")
        await service.update(session=session, settings=settings, webhook_id=webhook_id, data=patch)
        flash(request, f"Webhook {action}d.", "success")
    elif action == "test":
        try:
            await service.send_test(session=session, webhook_id=webhook_id)
        except DomainError as exc:
            flash(request, exc.detail, "error")
            return redirect(here)
        flash(request, "A test call is queued; its result appears in the log.", "success")
    elif action == "delete":
        await service.delete_webhook(session=session, webhook_id=webhook_id)
        flash(request, "Webhook deleted.", "success")
        return redirect("/admin/webhooks")
    else:
        flash(request, "Unknown action.", "error")
    return redirect(here)


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/replay")
async def replay_delivery(
    request: Request, webhook_id: int, delivery_id: int, session: SessionDep, user: ConsoleUser
) -> Response:
    """Send a delivery's event again."""
    require_role(user, "editor")
    try:
        await service.replay(session=session, webhook_id=webhook_id, delivery_id=delivery_id)
    except DomainError as exc:
        flash(request, exc.detail, "error")
    else:
        flash(request, f"Delivery {delivery_id} will be sent again.", "success")
    return redirect(f"/admin/webhooks/{webhook_id}")
