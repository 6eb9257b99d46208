"""Passkeys (WebAuthn) with the `webauthn` package: register, list, remove, and check one.

The challenge of a ceremony is kept on the browser's console session row, so it is
single-use and bound to that browser; the relying party is the public URL's host.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import webauthn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
)

from app.accounts.models import Account, ConsoleSession, Passkey
from app.db import utcnow
from app.errors import Invalid, NotFound, invalid


def relying_party(public_url: str) -> tuple[str, str]:
    """(RP id, expected origin) from the public URL."""
    parts = urlsplit(public_url)
    return parts.hostname or "localhost", f"{parts.scheme}://{parts.netloc}"


async def list_passkeys(*, session: AsyncSession, account_id: int) -> list[Passkey]:
    query = select(Passkey).where(Passkey.account_id == account_id).order_by(Passkey.id)
    return list(await session.scalars(query))


async def registration_options(
    *, session: AsyncSession, console_session: ConsoleSession, account: Account, public_url: str
) -> str:
    """The JSON options for navigator.credentials.create()."""
    rp_id, _origin = relying_party(public_url)
    existing = await list_passkeys(session=session, account_id=account.id)
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name="Tidings",
        user_name=account.email,
        user_id=str(account.id).encode(),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id)) for p in existing
        ],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED
        ),
    )
    console_session.challenge = bytes_to_base64url(options.challenge)
    await session.flush()
    return webauthn.options_to_json(options)


async def register(
    *,
    session: AsyncSession,
    console_session: ConsoleSession,
    account: Account,
    public_url: str,
    credential: dict[str, Any],
    name: str,
) -> Passkey:
    """Verify the browser's new credential and keep it."""
    rp_id, origin = relying_party(public_url)
    challenge = _take_challenge(console_session)
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
        raise Invalid(f"the passkey could not be verified: {exc}") from None
    passkey = Passkey(
        account_id=account.id,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        name=(name.strip() or "passkey")[:100],
    )
    session.add(passkey)
    await session.flush()
    return passkey


async def authentication_options(
    *, session: AsyncSession, console_session: ConsoleSession, public_url: str
) -> str:
    """The JSON options for navigator.credentials.get(), limited to the account's keys."""
    rp_id, _origin = relying_party(public_url)
    keys = await list_passkeys(session=session, account_id=console_session.account_id)
    options = webauthn.generate_authentication_options(
        rp_id=rp_id,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id)) for p in keys
        ],
    )
    console_session.challenge = bytes_to_base64url(options.challenge)
    await session.flush()
    return webauthn.options_to_json(options)


async def authenticate(
    *,
    session: AsyncSession,
    console_session: ConsoleSession,
    public_url: str,
    credential: dict[str, Any],
) -> bool:
    """True when the browser proved it holds one of the account's passkeys."""
    rp_id, origin = relying_party(public_url)
    challenge = _take_challenge(console_session)
    raw_id = str(credential.get("rawId") or credential.get("id") or "")
    passkey = await session.scalar(
        select(Passkey).where(
            Passkey.credential_id == raw_id, Passkey.account_id == console_session.account_id
        )
    )
    if passkey is None:
        return False
    try:
        verified = webauthn.verify_authentication_response(
            credential=json.dumps(credential),
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=passkey.sign_count,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError):
        return False
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = utcnow()
    return True


async def remove(*, session: AsyncSession, account_id: int, passkey_id: int) -> None:
    passkey = await session.get(Passkey, passkey_id)
    if passkey is None or passkey.account_id != account_id:
        raise NotFound("no such passkey")
    await session.delete(passkey)
    await session.flush()


def _take_challenge(console_session: ConsoleSession) -> bytes:
    """The session's pending challenge, cleared so it serves one ceremony only."""
    challenge = console_session.challenge
    console_session.challenge = None
    if not challenge:
        raise invalid("credential", "no passkey ceremony is under way; try again")
    return base64url_to_bytes(challenge)
