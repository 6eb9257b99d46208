"""Public pages of sign-up: the hosted form, the thank-you page, and the confirm link."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app.deps import SessionDep, SettingsDep
from app.security import rate_limited
from app.subscribers import links, service
from app.subscribers.emails import read_confirm_token
from app.web.pages import not_found_page, render_page

router = APIRouter(tags=["public pages"], include_in_schema=False)

# The hosted form posts to its own page (public.py), so an error keeps the address bar.
FORM_ACTION = "/subscribe"


async def render_form(
    request: Request,
    session: AsyncSession,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The sign-up form for the public lists, with what was typed and errors by field."""
    lists = await service.browse_lists(session=session, after=0, limit=200, public_only=True)
    values = {"email": "", "name": "", "lists": [], **(values or {})}
    context = {"lists": lists, "values": values, "errors": errors or {}, "action": FORM_ACTION}
    return render_page(request, "subscribe.html", context, status_code=status_code)


@router.get("/subscribe", response_class=HTMLResponse)
async def subscribe_form(request: Request, session: SessionDep, list: str = "") -> HTMLResponse:  # noqa: A002
    """The hosted sign-up form; `?list=slug` ticks that list."""
    return await render_form(request, session, values={"lists": [list] if list else []})


@router.get("/subscribe/thanks", response_class=HTMLResponse)
async def thanks(request: Request, status: str = "pending") -> HTMLResponse:
    """After a form sign-up: check your inbox, or you are subscribed."""
    return render_page(request, "subscribe_thanks.html", {"pending": status != "confirmed"})


@router.get(
    "/subscribe/confirm/{token}",
    response_class=HTMLResponse,
    dependencies=[Depends(rate_limited("confirm"))],
)
async def confirm_page(
    request: Request, token: str, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """A page with a confirm button; it changes nothing, because mail scanners follow links.

    With nothing left to confirm it says what is true instead: already confirmed, or left.
    """
    subscriber_id = read_confirm_token(settings, token)
    if subscriber_id is None:
        return not_found_page(request)
    state = await links.confirmation_state(session=session, subscriber_id=subscriber_id)
    if state is None:
        return not_found_page(request)
    if not state.pending:
        return render_page(request, "confirm_done.html", {"state": state})
    return render_page(request, "confirm.html", {"list_names": state.pending})


@router.post(
    "/subscribe/confirm/{token}",
    response_class=HTMLResponse,
    dependencies=[Depends(rate_limited("confirm"))],
)
async def confirm(
    request: Request, token: str, session: SessionDep, settings: SettingsDep
) -> HTMLResponse:
    """Confirm every pending subscription of the person the link was sent to."""
    subscriber_id = read_confirm_token(settings, token)
    if subscriber_id is None:
        return not_found_page(request)
    state = await links.confirm(session=session, subscriber_id=subscriber_id)
    if state is None:
        return not_found_page(request)
    return render_page(request, "confirm_done.html", {"state": state})
