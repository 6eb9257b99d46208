"""FastAPI dependency aliases shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import audit
from app.accounts.principal import Principal
from app.accounts.scopes import SAFE_METHODS
from app.config import Settings
from app.db import session_scope
from app.delivery.transport import Mailer
from app.security import check_admin, record_write


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the handler returns, rolled back on error.

    Declared with `scope="function"` below, so the commit runs when the handler returns
    and before the response is sent: a 2xx means the write is committed, and a commit
    that fails becomes the error answer (see app/errors.py), never a lost write.
    """
    async for session in session_scope(request.app.state.sessionmaker):
        yield session


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_mailer(request: Request) -> Mailer:
    return request.app.state.mailer  # type: ignore[no-any-return]


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MailerDep = Annotated[Mailer, Depends(get_mailer)]


async def admin_request(request: Request, session: SessionDep) -> AsyncIterator[Principal]:
    """Authenticate and authorise an API request; record it in the audit log when it writes.

    Scoped to the function like the session it depends on: the entry is added after the
    handler returns and before the session (entered first, so left last) commits, so the
    entry and the write it describes commit together or not at all.
    """
    principal = await check_admin(request, session)
    request.state.principal = principal
    if request.method in SAFE_METHODS:
        yield principal
        return
    with audit.watch(session) as watcher:
        yield principal
    await record_write(request, session, principal.actor, watcher)


PrincipalDep = Annotated[Principal, Depends(admin_request, scope="function")]
AdminDep = Depends(admin_request, scope="function")
