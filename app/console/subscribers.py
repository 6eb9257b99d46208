"""Console pages of subscribers: the table (search, filters, cursor pages), add one, export.

The table runs the API's own query (service.search_subscribers) in keyset pages: a page
reads its 50 rows by index, and nothing counts the whole table, so it costs the same at
a million subscribers as at a hundred. A person's own page is in subscriber_page.py.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from app.console.audience import can_edit, field_errors, read_form, refusal_field
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep
from app.errors import Conflict, Invalid, NotFound
from app.pagination import decode_cursor
from app.pagination import page as cut_page
from app.subscribers import service
from app.subscribers.audience_router import csv_response
from app.subscribers.emails import confirm, subscriptions_language
from app.subscribers.schemas import SubscriberCreate

router = APIRouter(prefix="/admin", tags=["console"])

PAGE_ROWS = 50
MAX_LISTS = 1000
STATUSES = ("active", "blocklisted", "pending", "confirmed", "unsubscribed")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
LABELS = {"email": "Email", "name": "Name", "lists": "Lists"}


def _filters(request: Request) -> tuple[dict[str, str], dict[str, str]]:
    """The table's filters from the query string, and what is wrong with them."""
    query = request.query_params
    values = {k: query.get(k, "").strip() for k in ("q", "list", "status", "cursor")}
    errors: dict[str, str] = {}
    if len(values["q"]) > 320 or _CONTROL.search(values["q"]):
        errors["q"] = "Search for at most 320 characters, without control characters."
    if values["list"] and not _SLUG.match(values["list"]):
        errors["list"] = "There is no such list."
    if values["status"] and values["status"] not in STATUSES:
        errors["status"] = "Choose a status from the list."
    return values, errors


async def _search(session: Any, values: dict[str, str]) -> tuple[list[Any], str | None]:
    try:
        after = decode_cursor(values["cursor"] or None) or 0
    except RequestValidationError:
        raise Invalid("This page link is not one the console made.", loc=("cursor",)) from None
    rows = await service.search_subscribers(
        session=session,
        after=after,
        limit=PAGE_ROWS + 1,
        q=values["q"] or None,
        list_slug=values["list"] or None,
        status=values["status"] or None,
    )
    return cut_page(rows, PAGE_ROWS)


@router.get("/subscribers")
async def subscribers_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Subscribers by id: search by email or name, filter by list and status, page on."""
    values, errors = _filters(request)
    items: list[Any] = []
    next_cursor = None
    status_code = 422 if errors else 200
    if not errors:
        try:
            items, next_cursor = await _search(session, values)
        except (Invalid, NotFound) as exc:
            errors[refusal_field(exc, "list")] = exc.detail
            status_code = exc.status_code
    lists = await service.browse_lists(session=session, after=0, limit=MAX_LISTS)
    export_query = {k: v for k, v in values.items() if v and k != "cursor"}
    response = page(
        request, "console/subscriber_index.html", items=items, next_cursor=next_cursor,
        values=values, errors=errors, lists=lists, statuses=STATUSES, can_edit=can_edit(user),
        export_query=export_query, memberships=service.memberships,
    )  # fmt: skip
    response.status_code = status_code
    return response


@router.get("/subscribers/export.csv")
async def export_subscribers(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """The table as filtered, every page of it, as a streamed CSV download."""
    values, errors = _filters(request)
    if errors:
        raise Invalid(next(iter(errors.values())), loc=("query", next(iter(errors))))
    filters = {"list_slug": values["list"] or None, "status": values["status"] or None,
               "q": values["q"] or None}  # fmt: skip
    await service.search_subscribers(session=session, after=0, limit=1, **filters)
    return csv_response(request, **filters)


async def _new_form(
    request: Request, session: Any, *, values: dict[str, Any], errors: dict[str, str],
    status_code: int = 200,
) -> Response:  # fmt: skip
    lists = await service.browse_lists(session=session, after=0, limit=MAX_LISTS)
    response = page(
        request, "console/subscriber_new.html", lists=lists, values=values, errors=errors
    )
    response.status_code = status_code
    return response


@router.get("/subscribers/new")
async def new_subscriber_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """A form to add one subscriber by hand."""
    require_role(user, "editor")
    values = {"lists": [request.query_params.get("list", "")], "subscription_status": "confirmed"}
    return await _new_form(request, session, values=values, errors={})


@router.post("/subscribers/new")
async def add_subscriber(
    request: Request, session: SessionDep, user: ConsoleUser, background: BackgroundTasks
) -> Response:
    """Add a subscriber: confirmed (the editor vouches for consent) or pending (emailed)."""
    require_role(user, "editor")
    form, many = await read_form(request)
    values: dict[str, Any] = {
        "email": form.get("email", "").strip(),
        "name": form.get("name", ""),
        "lists": many.get("lists", []),
        "subscription_status": form.get("subscription_status", "confirmed"),
    }
    settings = request.app.state.settings
    try:
        data = SubscriberCreate.model_validate(values)
        subscriber = await service.create_subscriber(
            session=session, data=data, check_deliverability=settings.check_deliverability
        )
    except ValidationError as exc:
        errors = field_errors(exc, LABELS)
        return await _new_form(request, session, values=values, errors=errors, status_code=422)
    except (Invalid, Conflict) as exc:
        errors = {refusal_field(exc, "email"): exc.detail}
        return await _new_form(
            request, session, values=values, errors=errors, status_code=exc.status_code
        )
    if data.subscription_status == "pending" and subscriber.subscriptions:
        _send_confirmation_later(request, background, subscriber)
    flash(request, f"{subscriber.email} added.", "success")
    return redirect(f"/admin/subscribers/{subscriber.id}")


def _send_confirmation_later(
    request: Request, background: BackgroundTasks, subscriber: Any
) -> None:
    """The confirmation email, built and sent after the answer (and so after the commit)."""
    settings, mailer = request.app.state.settings, request.app.state.mailer
    args = {
        "subscriber_id": subscriber.id,
        "email": subscriber.email,
        "name": subscriber.name,
        "list_names": sorted(s.mailing_list.name for s in subscriber.subscriptions),
        "language": subscriptions_language(settings, subscriber),
    }

    background.add_task(confirm, settings, mailer, **args)
