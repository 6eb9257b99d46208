"""The audit log in the console (owners): who did what, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.accounts import audit
from app.console.web import ConsoleUser, page, require_role
from app.deps import SessionDep
from app.pagination import Cursor

router = APIRouter(prefix="/admin", tags=["console"])
PAGE_SIZE = 100


@router.get("/audit", include_in_schema=False)
async def audit_page(
    request: Request, session: SessionDep, user: ConsoleUser, cursor: Cursor = None
) -> Response:
    """One page of the log."""
    require_role(user, "owner")
    rows, next_cursor = await audit.list_entries(session=session, limit=PAGE_SIZE, cursor=cursor)
    return page(request, "console/audit.html", entries=rows, next_cursor=next_cursor)
