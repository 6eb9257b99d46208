"""A person's own account: password, TOTP, passkeys, and their sessions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, Request
from fastapi.responses import JSONResponse, Response

from app.accounts import factors, passkeys, service, sessions
from app.accounts.models import ConsoleSession
from app.accounts.passwords import token_hash, verify_password
from app.accounts.principal import SESSION_COOKIE
from app.console.web import ConsoleUser, flash, page, redirect
from app.deps import SessionDep, SettingsDep
from app.errors import DomainError

router = APIRouter(prefix="/admin", tags=["console"])


def _this_session(request: Request) -> ConsoleSession:
    return request.state.console_session  # type: ignore[no-any-return]


@router.get("/account", include_in_schema=False)
async def account_page(
    request: Request, session: SessionDep, user: ConsoleUser, error: str | None = None
) -> Response:
    """The account page."""
    account = await service.get_account(session=session, account_id=user.id)
    new_secret = None if account.totp_secret else factors.new_totp_secret()
    uri = factors.totp_uri(new_secret, account.email) if new_secret else None
    current = token_hash(request.cookies.get(SESSION_COOKIE, ""))
    return page(
        request, "console/account.html",
        has_totp=bool(account.totp_secret), totp_secret=new_secret, totp_uri=uri,
        totp_qr=factors.totp_qr_svg(uri) if uri else None,
        passkeys=await passkeys.list_passkeys(session=session, account_id=account.id),
        sessions=await sessions.list_sessions(session=session, account_id=account.id),
        current_session=current, error=error,
    )  # fmt: skip


@router.post("/account/password", include_in_schema=False)
async def change_password(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    current: Annotated[str, Form(max_length=1000)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    confirm: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Change the password; every other session of the account ends."""
    account = await service.get_account(session=session, account_id=user.id)
    if not verify_password(account.password_hash, current):
        flash(request, "The current password is wrong; nothing changed.", "error")
        return redirect("/admin/account")
    if password != confirm:
        flash(request, "The two new passwords differ; nothing changed.", "error")
        return redirect("/admin/account")
    try:
        await service.set_password(session=session, account=account, password=password)
    except DomainError as exc:
        flash(request, f"Not changed: {exc.detail}.", "error")
        return redirect("/admin/account")
    flash(request, "Password changed. Sign in again with it.", "success")
    return redirect("/admin/login")


@router.post("/account/totp", include_in_schema=False)
async def enrol_totp(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    secret: Annotated[str, Form(max_length=64)] = "",
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Turn on TOTP once a code from the app matches the shown secret."""
    account = await service.get_account(session=session, account_id=user.id)
    try:
        factors.enrol_totp(account=account, secret=secret, code=code)
    except DomainError as exc:
        flash(request, f"{exc.detail}.", "error")
        return redirect("/admin/account")
    flash(request, "Two-step sign-in with an authenticator app is on.", "success")
    return redirect("/admin/account")


@router.post("/account/totp/delete", include_in_schema=False)
async def disable_totp(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Turn TOTP off."""
    account = await service.get_account(session=session, account_id=user.id)
    factors.disable_totp(account=account)
    flash(request, "The authenticator app is no longer asked for.", "success")
    return redirect("/admin/account")


@router.post("/account/passkeys/options", include_in_schema=False)
async def passkey_options(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """The WebAuthn options to create a passkey (called by passkeys.js)."""
    account = await service.get_account(session=session, account_id=user.id)
    options = await passkeys.registration_options(
        session=session, console_session=_this_session(request), account=account,
        public_url=settings.public_url,
    )  # fmt: skip
    return Response(options, media_type="application/json")


@router.post("/account/passkeys", include_in_schema=False)
async def add_passkey(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
    credential: Annotated[dict[str, Any], Body(embed=True)],
    name: Annotated[str, Body(embed=True, max_length=100)] = "",
) -> Response:
    """Keep the passkey the browser just created."""
    account = await service.get_account(session=session, account_id=user.id)
    passkey = await passkeys.register(
        session=session, console_session=_this_session(request), account=account,
        public_url=settings.public_url, credential=credential, name=name,
    )  # fmt: skip
    flash(request, f"Passkey “{passkey.name}” added.", "success")
    return JSONResponse({"id": passkey.id, "name": passkey.name}, status_code=201)


@router.post("/account/passkeys/{passkey_id}/delete", include_in_schema=False)
async def remove_passkey(
    request: Request, session: SessionDep, user: ConsoleUser, passkey_id: int
) -> Response:
    """Remove one of the account's passkeys."""
    await passkeys.remove(session=session, account_id=user.id, passkey_id=passkey_id)
    flash(request, "Passkey removed.", "success")
    return redirect("/admin/account")


@router.post("/account/sessions/delete", include_in_schema=False)
async def sign_out_everywhere(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """End every session of the account, this one included."""
    ended = await sessions.end_all_sessions(session=session, account_id=user.id)
    flash(request, f"Signed out everywhere ({ended} sessions ended).", "success")
    response = redirect("/admin/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
