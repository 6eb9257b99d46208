"""A person's page: lists and statuses, name and attributes, history, blocklist, export, erase."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.console.attribute_form import attributes_from_json, attributes_from_rows, rows_of
from app.console.audience import can_edit, field_errors, read_form, refusal_field
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep
from app.errors import Conflict, DomainError, Invalid
from app.pagination import BigRowId
from app.subscribers import service
from app.subscribers.history import history
from app.subscribers.schemas import SubscriberUpdate

router = APIRouter(prefix="/admin", tags=["console"])

SubscriberId = BigRowId
LABELS = {"name": "Name", "attributes": "Attributes", "lists": "Lists"}


async def _person(
    request: Request, session: Any, user: Any, subscriber_id: int, *,
    errors: dict[str, str] | None = None, values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:  # fmt: skip
    subscriber = await service.get_subscriber(session=session, subscriber_id=subscriber_id)
    lists = await service.browse_lists(session=session, after=0, limit=1000)
    attributes = subscriber.attributes or {}
    values = values or {}
    response = page(
        request, "console/subscriber_page.html", subscriber=subscriber,
        memberships=service.memberships(subscriber), lists=lists,
        history=await history(session=session, subscriber_id=subscriber_id),
        attribute_rows=values.get("rows", rows_of(attributes)),
        attributes_json=values.get("json", json.dumps(attributes, indent=2, ensure_ascii=False)),
        name_value=values.get("name", subscriber.name or ""),
        errors=errors or {}, can_edit=can_edit(user),
    )  # fmt: skip
    response.status_code = status_code
    return response


async def _update(
    request: Request, session: Any, user: Any, subscriber_id: int, fields: dict[str, Any],
    values: dict[str, Any], done: str,
) -> Response:  # fmt: skip
    """Validate and apply one change through the service; the page again when refused."""
    try:
        data = SubscriberUpdate.model_validate(fields)
        await service.update_subscriber(session=session, subscriber_id=subscriber_id, data=data)
    except ValidationError as exc:
        errors = field_errors(exc, LABELS)
        return await _person(
            request, session, user, subscriber_id, errors=errors, values=values, status_code=422
        )
    except (Invalid, Conflict) as exc:
        errors = {refusal_field(exc): exc.detail}
        return await _person(
            request, session, user, subscriber_id, errors=errors, values=values,
            status_code=exc.status_code,
        )  # fmt: skip
    flash(request, done, "success")
    return redirect(f"/admin/subscribers/{subscriber_id}")


@router.get("/subscribers/{subscriber_id}")
async def person_page(
    subscriber_id: SubscriberId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """One subscriber: lists, attributes, what they were sent and what happened."""
    return await _person(request, session, user, subscriber_id)


@router.post("/subscribers/{subscriber_id}/name")
async def save_name(
    subscriber_id: SubscriberId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """Change the person's name."""
    require_role(user, "editor")
    form, _ = await read_form(request)
    name = form.get("name", "")
    return await _update(request, session, user, subscriber_id, {"name": name},
                         {"name": name}, "Name saved.")  # fmt: skip


@router.post("/subscribers/{subscriber_id}/attributes")
async def save_attributes(
    subscriber_id: SubscriberId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """Replace the attributes, from the key/value rows or from the JSON editor."""
    require_role(user, "editor")
    form, many = await read_form(request)
    subscriber = await service.get_subscriber(session=session, subscriber_id=subscriber_id)
    if form.get("mode") == "json":
        text = form.get("attributes_json", "")
        values: dict[str, Any] = {"json": text}
        attributes, error = attributes_from_json(text)
        field = "attributes_json"
    else:
        rows = list(zip(many.get("key", []), many.get("value", []), strict=False))
        values = {"rows": rows}
        attributes, error = attributes_from_rows(rows, subscriber.attributes or {})
        field = "attribute_rows"
    if error:
        return await _person(request, session, user, subscriber_id, errors={field: error},
                             values=values, status_code=422)  # fmt: skip
    return await _update(request, session, user, subscriber_id, {"attributes": attributes},
                         values, "Attributes saved.")  # fmt: skip


@router.post("/subscribers/{subscriber_id}/lists")
async def save_membership(
    subscriber_id: SubscriberId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """Put the person on a list with a status, or change the status they have there."""
    require_role(user, "editor")
    form, _ = await read_form(request)
    membership = {"slug": form.get("list", ""), "status": form.get("status", "")}
    return await _update(request, session, user, subscriber_id, {"lists": [membership]},
                         {}, "Membership saved.")  # fmt: skip


@router.post("/subscribers/{subscriber_id}/status")
async def save_status(
    subscriber_id: SubscriberId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """Blocklist the person by hand (nothing is sent to them), or lift the blocklist."""
    require_role(user, "editor")
    form, _ = await read_form(request)
    wanted = form.get("status", "")
    done = "Blocklisted: nothing will be sent to this address." if wanted == "blocklisted" else (
        "Unblocked: this address can be sent to again.")  # fmt: skip
    return await _update(request, session, user, subscriber_id, {"status": wanted}, {}, done)


@router.get("/subscribers/{subscriber_id}/export")
async def export_person(
    subscriber_id: SubscriberId, session: SessionDep, user: ConsoleUser
) -> Response:
    """Every piece of data held on this person, as a JSON download (GDPR access request)."""
    data = await service.export_subscriber(session=session, subscriber_id=subscriber_id)
    return JSONResponse(
        jsonable_encoder(data),
        headers={"Content-Disposition": f'attachment; filename="subscriber-{subscriber_id}.json"'},
    )


async def _erase_form(
    request: Request, session: Any, user: Any, subscriber_id: int, *, error: str = "",
    status_code: int = 200,
) -> Response:  # fmt: skip
    subscriber = await service.get_subscriber(session=session, subscriber_id=subscriber_id)
    response = page(request, "console/subscriber_erase.html", subscriber=subscriber, error=error,
                    can_edit=can_edit(user))  # fmt: skip
    response.status_code = status_code
    return response


@router.get("/subscribers/{subscriber_id}/erase")
async def erase_page(
    subscriber_id: SubscriberId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """The confirmation step of an erasure: what goes, what stays, type the address."""
    return await _erase_form(request, session, user, subscriber_id)


@router.post("/subscribers/{subscriber_id}/erase")
async def erase(
    subscriber_id: SubscriberId, request: Request, session: SessionDep, user: ConsoleUser
) -> Response:
    """Erase the person (GDPR) once the typed address matches theirs."""
    require_role(user, "editor")
    form, _ = await read_form(request)
    subscriber = await service.get_subscriber(session=session, subscriber_id=subscriber_id)
    typed = form.get("confirm_email", "").strip().lower()
    if typed != subscriber.email.lower():
        error = "Type the subscriber's address exactly to confirm; nothing was erased."
        return await _erase_form(request, session, user, subscriber_id, error=error,
                                 status_code=422)  # fmt: skip
    try:
        await service.erase_subscriber(session=session, subscriber_id=subscriber_id)
    except DomainError as exc:
        return await _erase_form(request, session, user, subscriber_id, error=exc.detail,
                                 status_code=exc.status_code)  # fmt: skip
    flash(request, f"Subscriber #{subscriber_id} erased; only a hash of the address is kept.",
          "success")  # fmt: skip
    return redirect("/admin/subscribers")
