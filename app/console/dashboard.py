"""The dashboard at /admin: the state of lists, issues, deliverability and setup."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.console.web import ConsoleUser, page, redirect

router = APIRouter(prefix="/admin", tags=["console"])


@router.get("", include_in_schema=False)
async def dashboard(request: Request, user: ConsoleUser) -> Response:
    """The dashboard."""
    return page(request, "console/dashboard.html")


@router.get("/", include_in_schema=False)
async def dashboard_slash() -> Response:
    return redirect("/admin")
