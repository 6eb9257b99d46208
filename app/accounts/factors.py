"""Second factors: TOTP codes (pyotp), and whether an account has any factor at all."""

from __future__ import annotations

import time

import pyotp
import segno
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Account, Passkey
from app.errors import invalid

ISSUER = "Tidings"


async def has_second_factor(*, session: AsyncSession, account: Account) -> bool:
    if account.totp_secret:
        return True
    return bool(await passkey_count(session=session, account_id=account.id))


async def passkey_count(*, session: AsyncSession, account_id: int) -> int:
    query = select(func.count()).select_from(Passkey).where(Passkey.account_id == account_id)
    return int(await session.scalar(query) or 0)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str, issuer: str = ISSUER) -> str:
    """The otpauth:// URI an authenticator app reads."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def totp_qr_svg(uri: str) -> str:
    """The URI as an SVG QR code (segno), to scan from the enrolment page."""
    return segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")


def _matching_step(secret: str, code: str, at: float) -> int | None:
    """The time step the code belongs to, allowing one step of clock drift either side."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    step = int(at // totp.interval)
    for candidate in (step, step - 1, step + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(candidate), code):
            return candidate
    return None


def enrol_totp(*, account: Account, secret: str, code: str) -> None:
    """Turn TOTP on once the person proves their app has the secret."""
    if len(secret) != 32 or _matching_step(secret, code, time.time()) is None:
        raise invalid("code", "that code does not match; check the time on your device")
    account.totp_secret = secret
    account.totp_last_step = None


def disable_totp(*, account: Account) -> None:
    account.totp_secret = None
    account.totp_last_step = None


def check_totp(*, account: Account, code: str) -> bool:
    """True for a fresh valid code; a code already used (same or older step) is refused."""
    if not account.totp_secret:
        return False
    step = _matching_step(account.totp_secret, code, time.time())
    if step is None or (account.totp_last_step is not None and step <= account.totp_last_step):
        return False
    account.totp_last_step = step
    return True
