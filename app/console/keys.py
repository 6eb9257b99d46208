"""API keys in the console (owners): create with scopes, see last use, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.accounts import keys
from app.accounts.scopes import SCOPES
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep
from app.errors import DomainError

router = APIRouter(prefix="/admin", tags=["console"])
SCOPE_HELP = {
    "read": "read everything",
    "subscribers": "change lists, subscribers, imports and bounces",
    "issues": "write and change issues, media and layouts",
    "send": "send, test, pause, resume and cancel issues",
    "admin": "manage keys, read the audit log, change settings",
}


@router.get("/keys", include_in_schema=False)
async def keys_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """The keys, and the form to make one."""
    require_role(user, "owner")
    return page(
        request, "console/keys.html", keys=await keys.list_keys(session=session),
        scopes=SCOPES, scope_help=SCOPE_HELP, new_key=None,
    )  # fmt: skip


@router.post("/keys", include_in_schema=False)
async def create_key(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Make a key and show it this once."""
    require_role(user, "owner")
    form = await request.form()
    name = str(form.get("name", ""))[:200]
    chosen = [str(s) for s in form.getlist("scopes")][:10]
    try:
        key, secret = await keys.create_key(
            session=session, name=name, scopes=chosen, created_by=user.email
        )
    except DomainError as exc:
        flash(request, f"No key made: {exc.detail}.", "error")
        return redirect("/admin/keys")
    flash(request, f"Key “{key.name}” made. Copy it now: it is not shown again.", "success")
    return page(
        request, "console/keys.html", keys=await keys.list_keys(session=session),
        scopes=SCOPES, scope_help=SCOPE_HELP, new_key=secret, status_code=201,
    )  # fmt: skip


@router.post("/keys/{key_id}/delete", include_in_schema=False)
async def revoke_key(
    request: Request, session: SessionDep, user: ConsoleUser, key_id: int
) -> Response:
    """Revoke a key."""
    require_role(user, "owner")
    key = await keys.revoke_key(session=session, key_id=key_id)
    flash(request, f"Key “{key.name}” revoked.", "success")
    return redirect("/admin/keys")
