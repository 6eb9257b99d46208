"""Sign-in pages: email and password, then a second factor where the account has one."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, Form, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import audit, factors, mail, passkeys, service, sessions
from app.accounts.models import Account, ConsoleSession
from app.accounts.principal import SESSION_COOKIE
from app.accounts.throttle import SignInThrottle
from app.console.web import flash, page, redirect, set_cookie
from app.deps import MailerDep, SessionDep, SettingsDep
from app.errors import DomainError, NotFound
from app.security import client_address, limit_key

router = APIRouter(prefix="/admin", tags=["console"])
WRONG = "The email or the password is wrong."


def throttle(request: Request) -> SignInThrottle:
    state = request.app.state
    if not hasattr(state, "sign_in_throttle"):
        state.sign_in_throttle = SignInThrottle()
    return state.sign_in_throttle  # type: ignore[no-any-return]


def safe_next(value: str | None) -> str:
    """Only a console path of ours: never another site (no open redirect)."""
    if value and value.startswith("/admin") and not value.startswith("//") and "\\" not in value:
        return value
    return "/admin"


@router.get("/login", include_in_schema=False)
async def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    if getattr(request.state, "console_user", None) is not None:
        return redirect(safe_next(next))
    return page(request, "console/login.html", next=safe_next(next), email="")


@router.post("/login", include_in_schema=False)
async def login(
    request: Request,
    session: SessionDep,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=500)] = "/admin",
) -> Response:
    """Check the password; then sign in, or ask for the second factor."""
    limiter, key = throttle(request), email.strip().lower()
    address = limit_key(client_address(request))  # an IPv6 /64 is one client
    limiter.check(key, address)
    account = await service.check_password(session=session, email=email, password=password)
    if account is None:
        limiter.fail(key, address)
        await audit.record(session=session, actor=key[:320], action="sign_in.failed")
        return page(
            request, "console/login.html", error=WRONG, email=email, next=safe_next(next),
            status_code=401,
        )  # fmt: skip
    limiter.succeed(key)
    if await factors.has_second_factor(session=session, account=account):
        response = redirect(f"/admin/login/second-factor?next={safe_next(next)}")
        await begin(request, response, session, account, stage="mfa")
        return response
    response = redirect(safe_next(next))
    await begin(request, response, session, account, stage="full")
    return response


async def begin(
    request: Request, response: Response, session: AsyncSession, account: Account, *, stage: str
) -> None:
    """End the browser's old session and start a new one under a new id (no fixation)."""
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await sessions.end_session(session=session, token=old)
    idle = timedelta(minutes=request.app.state.settings.console_idle_minutes)
    await sessions.purge_idle(session=session, idle=idle)
    token = await sessions.start_session(
        session=session,
        account=account,
        stage=stage,
        address=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    set_cookie(request, response, SESSION_COOKIE, token, max_age=None)
    if stage == "full":
        await audit.record(session=session, actor=account.email, action="sign_in")


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, session: SessionDep) -> Response:
    """Sign out this browser."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await sessions.end_session(session=session, token=token)
    response = redirect("/admin/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _pending(request: Request) -> ConsoleSession:
    """The session that passed the password and still owes its second factor."""
    pending = getattr(request.state, "console_session", None)
    if pending is None or pending.stage != "mfa":
        raise NotFound("sign in with your password first")
    return pending  # type: ignore[no-any-return]


@router.get("/login/second-factor", include_in_schema=False)
async def second_factor_page(
    request: Request, session: SessionDep, next: str | None = None
) -> Response:
    """Ask for the TOTP code or the passkey."""
    if getattr(request.state, "console_session", None) is None:
        return redirect("/admin/login")
    pending = _pending(request)
    account = await service.get_account(session=session, account_id=pending.account_id)
    has_passkey = await factors.passkey_count(session=session, account_id=account.id) > 0
    return page(
        request, "console/second_factor.html", next=safe_next(next),
        has_totp=bool(account.totp_secret), has_passkey=has_passkey,
    )  # fmt: skip


@router.post("/login/totp", include_in_schema=False)
async def login_totp(
    request: Request,
    session: SessionDep,
    code: Annotated[str, Form(max_length=20)] = "",
    next: Annotated[str, Form(max_length=500)] = "/admin",
) -> Response:
    """Check the authenticator app's code, then sign in under a new session id."""
    pending = _pending(request)
    account = await service.get_account(session=session, account_id=pending.account_id)
    limiter, address = throttle(request), limit_key(client_address(request))
    limiter.check(f"totp:{account.id}", address)
    if not factors.check_totp(account=account, code=code):
        limiter.fail(f"totp:{account.id}", address)
        await audit.record(session=session, actor=account.email, action="sign_in.totp_failed")
        has_passkey = await factors.passkey_count(session=session, account_id=account.id) > 0
        return page(
            request, "console/second_factor.html", next=safe_next(next), status_code=401,
            has_totp=True, has_passkey=has_passkey, error="That code is not right.",
        )  # fmt: skip
    limiter.succeed(f"totp:{account.id}")
    response = redirect(safe_next(next))
    await begin(request, response, session, account, stage="full")
    return response


@router.post("/login/passkey/options", include_in_schema=False)
async def login_passkey_options(
    request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """The WebAuthn challenge for this browser's pending sign-in."""
    options = await passkeys.authentication_options(
        session=session, console_session=_pending(request), public_url=settings.public_url
    )
    return Response(options, media_type="application/json")


@router.post("/login/passkey", include_in_schema=False)
async def login_passkey(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credential: Annotated[dict[str, Any], Body(embed=True)],
    next: Annotated[str, Body(embed=True, max_length=500)] = "/admin",
) -> Response:
    """Check the passkey's assertion, then sign in under a new session id."""
    pending = _pending(request)
    account = await service.get_account(session=session, account_id=pending.account_id)
    limiter, address = throttle(request), limit_key(client_address(request))
    limiter.check(f"passkey:{account.id}", address)
    ok = await passkeys.authenticate(
        session=session, console_session=pending, public_url=settings.public_url,
        credential=credential,
    )  # fmt: skip
    if not ok:
        limiter.fail(f"passkey:{account.id}", address)
        return JSONResponse({"detail": "the passkey was not accepted"}, status_code=401)
    response = JSONResponse({"next": safe_next(next)})
    await begin(request, response, session, account, stage="full")
    return response


@router.get("/login/forgot", include_in_schema=False)
async def forgot_page(request: Request) -> Response:
    """Ask for the address to send a reset link to."""
    return page(request, "console/forgot.html", sent=False)


@router.post("/login/forgot", include_in_schema=False)
async def forgot(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    mailer: MailerDep,
    background: BackgroundTasks,
    email: Annotated[str, Form(max_length=320)] = "",
) -> Response:
    """Send a reset link when the account exists; the same page either way."""
    limiter, address = throttle(request), limit_key(client_address(request))
    limiter.check(f"reset:{email.strip().lower()}", address)
    limiter.fail(f"reset:{email.strip().lower()}", address)  # every request counts here
    try:
        account = await service.find_account(session=session, email=service.normalise_email(email))
    except DomainError:
        account = None
    if account is not None and account.password_hash is not None:
        token = await service.issue_link(session=session, account=account, purpose="reset")
        envelope = mail.link_envelope(settings, purpose="reset", email=account.email, token=token)
        # Sent after the answer (and after the commit), so timing tells nothing either.
        background.add_task(mail.send_link, mailer, envelope)
    return page(request, "console/forgot.html", sent=True)


@router.get("/password/{token}", include_in_schema=False)
async def password_page(request: Request, session: SessionDep, token: str) -> Response:
    """The form that sets a password through an invitation or reset link."""
    link, account = await service.open_link(session=session, token=token)
    return page(
        request, "console/set_password.html", token=token, email=account.email,
        invite=link.purpose == "invite",
    )  # fmt: skip


@router.post("/password/{token}", include_in_schema=False)
async def set_password(
    request: Request,
    session: SessionDep,
    token: str,
    password: Annotated[str, Form(max_length=1000)] = "",
    confirm: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Set the password once; then the person signs in with it."""
    link, account = await service.open_link(session=session, token=token)
    error = None
    if password != confirm:
        error = "The two passwords differ."
    else:
        try:
            await service.use_link(session=session, token=token, password=password)
        except DomainError as exc:
            error = exc.detail
    if error:
        return page(
            request, "console/set_password.html", token=token, email=account.email,
            invite=link.purpose == "invite", error=error, status_code=422,
        )  # fmt: skip
    await audit.record(
        session=session, actor=account.email, action=f"person.password_{link.purpose}",
        target=f"person {account.id}",
    )  # fmt: skip
    flash(request, "Your password is set. Sign in with it now.", "success")
    return redirect("/admin/login")
