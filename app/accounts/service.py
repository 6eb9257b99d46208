"""People: create, list, remove, sign in with a password, and one-time links to set one."""

from __future__ import annotations

import secrets
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, AccountToken, ConsoleSession
from app.accounts.passwords import hash_password, needs_rehash, token_hash, verify_password
from app.accounts.scopes import ROLES
from app.db import utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound, invalid

LINK_LIFETIME = {"invite": timedelta(days=7), "reset": timedelta(hours=1)}


def normalise_email(email: str) -> str:
    """A valid address (email-validator, no DNS), lowercased: how accounts are found."""
    try:
        info = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise invalid("email", f"enter an email address ({exc})") from None
    return str(info.normalized).lower()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise invalid("role", f"role must be one of {', '.join(ROLES)}")
    return role


async def create_account(
    *, session: AsyncSession, email: str, role: str, password: str | None = None
) -> Account:
    """A new account; without a password it can only sign in after setting one by link."""
    email = normalise_email(email)
    check_role(role)
    if await find_account(session=session, email=email) is not None:
        raise Conflict("an account with this address exists")
    account = Account(
        email=email, role=role, password_hash=hash_password(password) if password else None
    )
    session.add(account)
    await session.flush()
    return account


async def find_account(*, session: AsyncSession, email: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.email == email.strip().lower()))


async def get_account(*, session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("no such account")
    return account


async def list_accounts(*, session: AsyncSession) -> list[Account]:
    return list(await session.scalars(select(Account).order_by(Account.email)))


async def count_accounts(*, session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def change_role(*, session: AsyncSession, account: Account, role: str) -> None:
    """Give an account another role; the last owner stays an owner."""
    check_role(role)
    if account.role == "owner" and role != "owner":
        await _keep_an_owner(session)
    account.role = role
    await session.flush()


async def remove_account(*, session: AsyncSession, account: Account) -> None:
    """Delete an account, its sessions and links; the last owner cannot be removed."""
    if account.role == "owner":
        await _keep_an_owner(session)
    await session.delete(account)
    await session.flush()


async def _keep_an_owner(session: AsyncSession) -> None:
    owners = await session.scalar(
        select(func.count()).select_from(Account).where(Account.role == "owner")
    )
    if (owners or 0) <= 1:
        raise Forbidden("the last owner cannot be removed or demoted")


async def check_password(*, session: AsyncSession, email: str, password: str) -> Account | None:
    """The account when the password is right; None for a wrong one or an unknown address."""
    try:
        account = await find_account(session=session, email=normalise_email(email))
    except Invalid:  # a malformed address is just another wrong answer
        account = None
    stored = account.password_hash if account else None
    if not verify_password(stored, password) or account is None:
        return None
    if needs_rehash(stored or ""):
        account.password_hash = hash_password(password)
    return account


async def set_password(*, session: AsyncSession, account: Account, password: str) -> None:
    """Set a new password and end every session of the account (a reset locks others out)."""
    account.password_hash = hash_password(password)
    await session.execute(delete(ConsoleSession).where(ConsoleSession.account_id == account.id))
    await session.flush()


async def issue_link(*, session: AsyncSession, account: Account, purpose: str) -> str:
    """A one-time token for an invitation or reset; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    # A new link replaces the earlier unused ones of the same purpose.
    await session.execute(
        delete(AccountToken).where(
            AccountToken.account_id == account.id, AccountToken.purpose == purpose
        )
    )
    session.add(
        AccountToken(
            token_hash=token_hash(token),
            account_id=account.id,
            purpose=purpose,
            expires_at=utcnow() + LINK_LIFETIME[purpose],
        )
    )
    await session.flush()
    return token


async def open_link(*, session: AsyncSession, token: str) -> tuple[AccountToken, Account]:
    """The live link and its account; 404 for an unknown, used or expired one."""
    link = await session.get(AccountToken, token_hash(token))
    if link is None or link.used_at is not None or link.expires_at <= utcnow():
        raise NotFound("this link is not valid any more; ask for a new one")
    return link, await get_account(session=session, account_id=link.account_id)


async def use_link(*, session: AsyncSession, token: str, password: str) -> Account:
    """Set the password through a link, once."""
    link, account = await open_link(session=session, token=token)
    # Marked used by a conditional UPDATE, so two submissions of one link set it once.
    used = await session.execute(
        update(AccountToken)
        .where(AccountToken.token_hash == link.token_hash, AccountToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound("this link is not valid any more; ask for a new one")
    await set_password(session=session, account=account, password=password)
    return account
