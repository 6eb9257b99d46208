"""Public pages of sign-up: the hosted form, the thank-you page, and the confirm link."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from app import i18n
from app.deps import SessionDep, SettingsDep
from app.security import rate_limited
from app.subscribers import links, service
from app.subscribers.emails import read_confirm_token
from app.web.pages import not_found_page, render_page

router = APIRouter(tags=["public pages"], include_in_schema=False)

# The hosted form posts to its own page (public.py), so an error keeps the address bar.
FORM_ACTION = "/subscribe"


def form_language(request: Request, lists: list[Any], ticked: list[str], lang: str) -> str:
    """The hosted form's language: `?lang=` when shipped, else its list's, else its lists'.

    With `?list=slug` the page is about that one list; otherwise about every list it offers.
    """
    if i18n.is_shipped(lang):
        return lang
    default = i18n.default_language(request.app.state.settings)
    about = [m for m in lists if m.slug in ticked] if len(ticked) == 1 else []
    return i18n.language_of([m.language for m in about or lists], default)


async def render_form(
    request: Request,
    session: AsyncSession,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    lang: str = "",
) -> HTMLResponse:
    """The sign-up form for the public lists, with what was typed and errors by field.

    `errors` holds the catalogue's English messages: they are translated here.
    """
    lists = await service.browse_lists(session=session, after=0, limit=200, public_only=True)
    values = {"email": "", "name": "", "lists": [], **(values or {})}
    page_lang = form_language(request, lists, values["lists"], lang)
    _ = i18n.translations(page_lang).gettext
    context = {
        "lists": lists,
        "values": values,
        "errors": {field: _(message) for field, message in (errors or {}).items()},
        "action": FORM_ACTION,
        "lang": page_lang,
        "explicit_lang": i18n.is_shipped(lang),
    }
    return render_page(request, "subscribe.html", context, status_code=status_code)


@router.get("/subscribe", response_class=HTMLResponse)
async def subscribe_form(
    request: Request,
    session: SessionDep,
    list: str = "",  # noqa: A002
    lang: str = "",
) -> HTMLResponse:
    """The hosted sign-up form; `?list=slug` ticks that list, `?lang=de` chooses its language."""
    return await render_form(request, session, values={"lists": [list] if list else []}, lang=lang)


@router.get("/subscribe/thanks", response_class=HTMLResponse)
async def thanks(request: Request, status: str = "pending", lang: str = "") -> HTMLResponse:
    """After a form sign-up: check your inbox, or you are subscribed (in the lists' language)."""
    context = {
        "pending": status != "confirmed",
        "lang": lang,
        "subscribe_href": f"/subscribe?lang={lang}" if i18n.is_shipped(lang) else "/subscribe",
    }
    return render_page(request, "subscribe_thanks.html", context)


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
    lang = _confirm_language(request, state)
    if not state.pending:
        return render_page(request, "confirm_done.html", {"state": state, "lang": lang})
    return render_page(request, "confirm.html", {"list_names": state.pending, "lang": lang})


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
    lang = _confirm_language(request, state)
    return render_page(request, "confirm_done.html", {"state": state, "lang": lang})


def _confirm_language(request: Request, state: links.Confirmation) -> str:
    default = i18n.default_language(request.app.state.settings)
    return i18n.language_of(state.languages, default)
