"""Server-side console sessions: a random id in the cookie, its SHA-256 in the database."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, ConsoleSession
from app.accounts.passwords import token_hash
from app.db import utcnow

# last_seen_at is written at most this often, so reading pages costs no write each time.
TOUCH_EVERY = timedelta(minutes=1)
MFA_LIFETIME = timedelta(minutes=10)


async def start_session(
    *, session: AsyncSession, account: Account, stage: str, address: str, user_agent: str
) -> str:
    """A new session id (never one the browser brought: no fixation); returns the cookie value."""
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            id_hash=token_hash(token),
            account_id=account.id,
            stage=stage,
            address=address[:64],
            user_agent=user_agent[:300],
        )
    )
    await session.flush()
    return token


async def load_session(
    *, session: AsyncSession, token: str, idle: timedelta
) -> tuple[ConsoleSession, Account] | None:
    """The live session and its account, or None when unknown or idle too long (then ended)."""
    if not token or len(token) > 100:
        return None
    row = (
        await session.execute(
            select(ConsoleSession, Account)
            .join(Account, Account.id == ConsoleSession.account_id)
            .where(ConsoleSession.id_hash == token_hash(token))
        )
    ).first()
    if row is None:
        return None
    console_session, account = row
    now = utcnow()
    limit = idle if console_session.stage == "full" else MFA_LIFETIME
    if now - console_session.last_seen_at > limit:
        await session.delete(console_session)
        await session.flush()
        return None
    if now - console_session.last_seen_at > TOUCH_EVERY:
        console_session.last_seen_at = now
    return console_session, account


async def purge_idle(*, session: AsyncSession, idle: timedelta) -> None:
    """Delete sessions nobody came back to, so the table holds only live ones."""
    now = utcnow()
    await session.execute(
        delete(ConsoleSession).where(
            ((ConsoleSession.stage == "full") & (ConsoleSession.last_seen_at < now - idle))
            | (
                (ConsoleSession.stage != "full")
                & (ConsoleSession.last_seen_at < now - MFA_LIFETIME)
            )
        )
    )


async def end_session(*, session: AsyncSession, token: str) -> None:
    await session.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == token_hash(token)))


async def end_all_sessions(*, session: AsyncSession, account_id: int) -> int:
    """Sign an account out everywhere; returns how many sessions ended."""
    result = await session.execute(
        delete(ConsoleSession).where(ConsoleSession.account_id == account_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def list_sessions(*, session: AsyncSession, account_id: int) -> list[ConsoleSession]:
    return list(
        await session.scalars(
            select(ConsoleSession)
            .where(ConsoleSession.account_id == account_id)
            .order_by(ConsoleSession.last_seen_at.desc())
        )
    )
