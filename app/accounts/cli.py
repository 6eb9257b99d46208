"""What `tidings user ...` does: accounts made and removed from the shell."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts import audit, service
from app.config import Settings
from app.db import make_engine, make_sessionmaker

ACTOR = "command line"


@asynccontextmanager
async def _session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on the configured database, committed when the block ends cleanly."""
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            yield session
            await session.commit()
    finally:
        await engine.dispose()


async def add_user(settings: Settings, email: str, role: str, password: str | None) -> str:
    """Create an account; without a password, the link that sets one."""
    base = settings.public_url.rstrip("/")
    async with _session(settings) as session:
        account = await service.create_account(
            session=session, email=email, role=role, password=password
        )
        await audit.record(
            session=session, actor=ACTOR, action="person.create",
            target=f"person {account.id}", detail=f"role={role}",
        )  # fmt: skip
        if password:
            return f"created {account.email} ({role}); sign in at {base}/admin/login"
        token = await service.issue_link(session=session, account=account, purpose="invite")
    return (
        f"created {account.email} ({role}); set the password within 7 days at\n"
        f"{base}/admin/password/{token}"
    )


async def list_users(settings: Settings) -> list[tuple[str, str, bool]]:
    """(email, role, has a password) for every account."""
    async with _session(settings) as session:
        accounts = await service.list_accounts(session=session)
        return [(a.email, a.role, a.password_hash is not None) for a in accounts]


async def remove_user(settings: Settings, email: str) -> None:
    """Remove an account; LookupError when there is none."""
    async with _session(settings) as session:
        account = await service.find_account(session=session, email=email)
        if account is None:
            raise LookupError(email)
        await audit.record(
            session=session, actor=ACTOR, action="person.delete", target=f"person {account.id}"
        )
        await service.remove_account(session=session, account=account)


async def count_users(settings: Settings) -> int:
    async with _session(settings) as session:
        return await service.count_accounts(session=session)
