"""Sign-in pages: email and password, then a second factor where the account has one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import audit, factors, service, sessions
from app.accounts.models import Account
from app.accounts.principal import SESSION_COOKIE
from app.accounts.throttle import SignInThrottle
from app.console.web import page, redirect, set_cookie
from app.deps import SessionDep
from app.security import client_address

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
    limiter, address, key = throttle(request), client_address(request), email.strip().lower()
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
