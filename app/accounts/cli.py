"""What `tidings user ...` does: accounts made and removed from the shell."""

from __future__ import annotations

from app.accounts import audit, service
from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope


async def add_user(settings: Settings, email: str, role: str, password: str | None) -> str:
    """Create an account; without a password, the link that sets one."""
    engine = make_engine(settings.database_url)
    try:
        async for session in session_scope(make_sessionmaker(engine)):
            account = await service.create_account(
                session=session, email=email, role=role, password=password
            )
            await audit.record(
                session=session, actor="command line", action="person.create",
                target=f"person {account.id}", detail=f"role={role}",
            )  # fmt: skip
            if password:
                return f"created {account.email} ({role}); sign in at {_base(settings)}/admin/login"
            token = await service.issue_link(session=session, account=account, purpose="invite")
            return (
                f"created {account.email} ({role}); set the password within 7 days at\n"
                f"{_base(settings)}/admin/password/{token}"
            )
    finally:
        await engine.dispose()
    raise AssertionError("unreachable")  # pragma: no cover


async def list_users(settings: Settings) -> list[tuple[str, str, bool]]:
    """(email, role, has a password) for every account."""
    engine = make_engine(settings.database_url)
    try:
        async for session in session_scope(make_sessionmaker(engine)):
            accounts = await service.list_accounts(session=session)
            return [(a.email, a.role, a.password_hash is not None) for a in accounts]
    finally:
        await engine.dispose()
    return []  # pragma: no cover


async def remove_user(settings: Settings, email: str) -> None:
    engine = make_engine(settings.database_url)
    try:
        async for session in session_scope(make_sessionmaker(engine)):
            account = await service.find_account(session=session, email=email)
            if account is None:
                raise LookupError(email)
            await audit.record(
                session=session, actor="command line", action="person.delete",
                target=f"person {account.id}",
            )  # fmt: skip
            await service.remove_account(session=session, account=account)
    finally:
        await engine.dispose()


async def count_users(settings: Settings) -> int:
    engine = make_engine(settings.database_url)
    try:
        async for session in session_scope(make_sessionmaker(engine)):
            return await service.count_accounts(session=session)
    finally:
        await engine.dispose()
    return 0  # pragma: no cover


def _base(settings: Settings) -> str:
    return settings.public_url.rstrip("/")
