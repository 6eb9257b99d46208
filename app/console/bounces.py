"""Console page of the bounce log: filters by type and address, each entry linked on."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from app.bounces.log import BOUNCE_TYPES, browse_bounces
from app.console.web import ConsoleUser, page
from app.deps import SessionDep
from app.errors import Invalid
from app.pagination import decode_cursor
from app.pagination import page as cut_page

router = APIRouter(prefix="/admin", tags=["console"])

PAGE_ROWS = 50


@router.get("/bounces")
async def bounces_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Recorded bounces and complaints, newest first, by type and address."""
    query = request.query_params
    values = {k: query.get(k, "").strip() for k in ("email", "type", "cursor")}
    errors: dict[str, str] = {}
    if len(values["email"]) > 320:
        errors["email"] = "An address has at most 320 characters."
    if values["type"] and values["type"] not in BOUNCE_TYPES:
        errors["type"] = "Choose a type from the list."
    rows: list[Any] = []
    if not errors:
        try:
            before = decode_cursor(values["cursor"] or None)
            rows = await browse_bounces(session=session, limit=PAGE_ROWS + 1, before=before,
                                        email=values["email"] or None,
                                        type=values["type"] or None)  # fmt: skip
        except RequestValidationError:
            errors["cursor"] = "This page link is not one the console made."
        except Invalid as exc:
            errors[exc.loc[-1] if exc.loc else "email"] = exc.detail
    rows, next_cursor = cut_page(rows, PAGE_ROWS)
    filters = {k: v for k, v in values.items() if v and k != "cursor"}
    response = page(request, "console/bounce_index.html", rows=rows, values=values,
                    errors=errors, types=BOUNCE_TYPES, next_cursor=next_cursor,
                    filters=filters)  # fmt: skip
    response.status_code = 422 if errors else 200
    return response
