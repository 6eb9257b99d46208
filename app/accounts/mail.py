"""The console's own emails: an invitation and a password reset, each with a one-time link."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from app.config import Settings
from app.delivery.transport import DeliveryError, Envelope, Mailer

log = logging.getLogger(__name__)
SEND_TIMEOUT = 10.0

_TEXT = {
    "invite": (
        "You are invited to the {org} newsletter console",
        "You have been invited to the {org} newsletter console as {role}.\n\n"
        "Choose your password here (the link works once, for 7 days):\n{url}\n",
    ),
    "reset": (
        "Reset your {org} console password",
        "Someone asked to reset the password of this account on the {org} console.\n\n"
        "Choose a new password here (the link works once, for 1 hour):\n{url}\n\n"
        "If it was not you, ignore this message: nothing changes.\n",
    ),
}


def link_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/admin/password/{token}"


def link_envelope(
    settings: Settings, *, purpose: str, email: str, token: str, role: str = ""
) -> Envelope:
    """The message that carries an invitation or reset link."""
    subject, body = _TEXT[purpose]
    org = settings.organisation_name
    message = EmailMessage()
    message["From"] = settings.from_
    message["To"] = email
    message["Subject"] = subject.format(org=org)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.sender_domain)
    message.set_content(body.format(org=org, role=role, url=link_url(settings, token)))
    sender = parseaddr(settings.from_)[1] or f"newsletter@{settings.sender_domain}"
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return Envelope(sender=sender, recipients=(email,), data=data)


async def send_link(mailer: Mailer, envelope: Envelope) -> bool:
    """Send within SEND_TIMEOUT; a failure is logged (the owner sees the link on the page)."""
    try:
        await asyncio.wait_for(mailer.send(envelope), timeout=SEND_TIMEOUT)
    except (DeliveryError, OSError, TimeoutError) as exc:
        log.warning("account email not sent (%s): %s", type(exc).__name__, exc)
        return False
    return True
