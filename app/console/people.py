"""People (owners only): invite someone as owner, editor or viewer; change roles; remove."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import Response

from app.accounts import mail, service
from app.accounts.scopes import ROLES
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import MailerDep, SessionDep, SettingsDep
from app.errors import DomainError, Forbidden

router = APIRouter(prefix="/admin", tags=["console"])


@router.get("/people", include_in_schema=False)
async def people_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Everyone with an account, and the invitation form."""
    require_role(user, "owner")
    accounts = await service.list_accounts(session=session)
    return page(request, "console/people.html", accounts=accounts, roles=ROLES)


@router.post("/people/invite", include_in_schema=False)
async def invite(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    background: BackgroundTasks,
    user: ConsoleUser,
    email: Annotated[str, Form(max_length=320)] = "",
    role: Annotated[str, Form(max_length=16)] = "viewer",
) -> Response:
    """Create the account and send its one-time link (also shown here, to pass on by hand)."""
    require_role(user, "owner")
    try:
        account = await service.create_account(session=session, email=email, role=role)
    except DomainError as exc:
        flash(request, f"Not invited: {exc.detail}.", "error")
        return redirect("/admin/people")
    await _send_invite(request, session, settings, mailer, background, account.id)
    return redirect("/admin/people")


async def _send_invite(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    background: BackgroundTasks,
    account_id: int,
) -> None:
    account = await service.get_account(session=session, account_id=account_id)
    token = await service.issue_link(session=session, account=account, purpose="invite")
    envelope = mail.link_envelope(
        settings, purpose="invite", email=account.email, token=token, role=account.role
    )
    background.add_task(mail.send_link, mailer, envelope)
    flash(
        request,
        f"Invitation sent to {account.email}. Their link (works once, 7 days): "
        f"{mail.link_url(settings, token)}",
        "success",
    )


@router.post("/people/{account_id}/invite", include_in_schema=False)
async def resend_invite(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    background: BackgroundTasks,
    user: ConsoleUser,
    account_id: int,
) -> Response:
    """A new invitation link for someone who has not set a password yet."""
    require_role(user, "owner")
    account = await service.get_account(session=session, account_id=account_id)
    if account.password_hash is not None:
        flash(request, f"{account.email} has a password already.", "error")
        return redirect("/admin/people")
    await _send_invite(request, session, settings, mailer, background, account.id)
    return redirect("/admin/people")


@router.post("/people/{account_id}/role", include_in_schema=False)
async def change_role(
    request: Request,
    session: SessionDep,
    user: ConsoleUser,
    account_id: int,
    role: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    """Give someone another role."""
    require_role(user, "owner")
    account = await service.get_account(session=session, account_id=account_id)
    try:
        await service.change_role(session=session, account=account, role=role)
    except DomainError as exc:
        flash(request, f"Not changed: {exc.detail}.", "error")
        return redirect("/admin/people")
    flash(request, f"{account.email} is now {role}.", "success")
    return redirect("/admin/people")


@router.post("/people/{account_id}/delete", include_in_schema=False)
async def remove(
    request: Request, session: SessionDep, user: ConsoleUser, account_id: int
) -> Response:
    """Remove someone's account; their sessions end at once."""
    require_role(user, "owner")
    account = await service.get_account(session=session, account_id=account_id)
    if account.id == user.id:
        raise Forbidden("you cannot remove your own account; ask another owner")
    try:
        await service.remove_account(session=session, account=account)
    except DomainError as exc:
        flash(request, f"Not removed: {exc.detail}.", "error")
        return redirect("/admin/people")
    flash(request, f"{account.email} removed.", "success")
    return redirect("/admin/people")
