"""Who may use the console: the signed-in person, their role, CSRF on writes, the audit.

`GUARD` is the dependency web.install() puts on every console router, so no area can
forget it: it loads the session once per request, refuses a page to someone not signed
in (LoginRequired: 303 to the login page), refuses a write without the form's CSRF token
or above the person's role, and records every write in the audit log in the request's
own transaction. `ConsoleUser` is the signed-in person as a page's parameter.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from app.accounts import audit, sessions
from app.accounts.principal import CSRF_HEADER, PRESESSION_COOKIE, SESSION_COOKIE, csrf_matches
from app.accounts.scopes import ROLE_RANK, SAFE_METHODS, console_role, has_role
from app.deps import SessionDep
from app.errors import Forbidden
from app.security import record_write


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in person as pages see them."""

    id: int
    email: str
    role: str


class LoginRequired(Exception):
    """No signed-in session: the console answers 303 to the login page."""


async def _load(request: Request, session: SessionDep) -> CurrentUser | None:
    """Read the session cookie once per request; leave what it found on request.state."""
    if hasattr(request.state, "console_loaded"):
        return request.state.console_user  # type: ignore[no-any-return]
    settings = request.app.state.settings
    cookie = request.cookies.get(SESSION_COOKIE, "")
    found = await sessions.load_session(
        session=session, token=cookie, idle=timedelta(minutes=settings.console_idle_minutes)
    )
    user = None
    request.state.console_session = found[0] if found else None
    if found and found[0].stage == "full":
        account = found[1]
        user = CurrentUser(id=account.id, email=account.email, role=account.role)
    request.state.console_user = user
    request.state.console_loaded = True
    # The CSRF token belongs to the session cookie, or before sign-in to the pre-session one.
    request.state.csrf_cookie = cookie if found else request.cookies.get(PRESESSION_COOKIE)
    return user


async def _guard(request: Request, session: SessionDep) -> AsyncIterator[None]:
    user = await _load(request, session)
    needed = console_role(request.method, request.url.path)
    if needed is not None:
        if user is None:
            raise LoginRequired
        if not has_role(user.role, needed):
            raise Forbidden(f"this needs the {needed} role; you are {user.role}")
    if request.method in SAFE_METHODS:
        yield
        return
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and "form" in request.headers.get("content-type", ""):
        presented = str((await request.form()).get("csrf_token", "")) or None
    secret = request.app.state.settings.secret_key_value
    if not csrf_matches(secret, request.state.csrf_cookie, presented):
        raise Forbidden("the form's CSRF token is missing or wrong; reload the page and try again")
    with audit.watch(session) as watcher:
        yield
    # Sign-in pages write their own entries (and their paths hold one-time tokens).
    if watcher.changed and not _SIGN_IN.match(request.url.path):
        actor = user.email if user else "anonymous"
        await record_write(request, session, actor, watcher)


_SIGN_IN = re.compile(r"^/admin/(login|logout|password)(/|$)")
GUARD = [Depends(_guard, scope="function")]


async def _console_user(request: Request, session: SessionDep) -> CurrentUser:
    user = await _load(request, session)
    if user is None:
        raise LoginRequired
    return user


ConsoleUser = Annotated[CurrentUser, Depends(_console_user)]


def require_role(user: CurrentUser, role: str) -> None:
    """Refuse (403) unless the person has at least `role` (owner > editor > viewer)."""
    if ROLE_RANK.get(user.role, -1) < ROLE_RANK[role]:
        raise Forbidden(f"this needs the {role} role; you are {user.role}")
