"""The settings page: branding (owners change it), and what the environment and DNS need."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app import branding, setup_report
from app.config import Settings
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep, SettingsDep
from app.errors import Invalid
from app.media import service as media
from app.subscribers import service as audience

router = APIRouter(prefix="/admin", tags=["console"])


async def _page(
    request: Request, session: Any, settings: Settings, user: Any, *,
    values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:  # fmt: skip
    current = await branding.load(session=session, settings=settings)
    lists = await audience.browse_lists(session=session, after=0, limit=1000, public_only=True)
    images = await media.list_media(session=session, limit=200)
    records, dns_problems = setup_report.dns_records(settings)
    return page(
        request, "console/settings_index.html", branding_values=values or current.__dict__,
        errors=errors or {}, images=images, environment=setup_report.environment(settings),
        records=records, dns_problems=dns_problems, webhooks=setup_report.webhook_urls(settings),
        snippet=setup_report.embed_snippet(settings, [m.slug for m in lists][:1] or ["weekly"]),
        is_owner=user.role == "owner", status_code=status_code,
    )  # fmt: skip


@router.get("/settings")
async def settings_page(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """Branding, the environment (secrets hidden), DNS records, webhooks, the embed snippet."""
    return await _page(request, session, settings, user)


@router.post("/settings/branding")
async def save_branding(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """Save the organisation's name, postal address, accent colour and logo (owners)."""
    require_role(user, "owner")
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("name", "address", "accent", "logo_media_id")}
    logo = values["logo_media_id"]
    try:
        await branding.save(session=session, settings=settings, name=values["name"],
                            address=values["address"], accent=values["accent"],
                            logo_media_id=int(logo) if logo.isdigit() else None)  # fmt: skip
    except Invalid as exc:
        field = str(exc.loc[-1]) if exc.loc else "name"
        return await _page(request, session, settings, user, values=values,
                           errors={field: exc.detail}, status_code=422)  # fmt: skip
    flash(request, "Branding saved: new emails and public pages use it now.", "success")
    return redirect("/admin/settings")
