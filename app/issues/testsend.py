"""Who a preview is rendered for, and test sends: an issue to a few addresses, unrecorded."""

from __future__ import annotations

import asyncio
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.delivery.transport import DeliveryError, Envelope, Mailer
from app.errors import DomainError, NotFound
from app.issues import compose, service
from app.issues.rendering import Recipient
from app.models import Subscriber

Sample = Literal["named", "nameless"]


class MailRefused(DomainError):
    """The mail server refused a test send: the fault is upstream of us."""

    status_code = 502


async def preview_recipient(
    *,
    session: AsyncSession,
    settings: Settings,
    issue_id: int,
    subscriber_id: int | None,
    sample: Sample = "named",
) -> Recipient:
    """A real subscriber's data and links, or a sample one (with a name or without)."""
    if subscriber_id is None:
        return compose.sample_recipient(settings, issue_id, nameless=sample == "nameless")
    subscriber = await session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"subscriber {subscriber_id} not found")
    return compose.recipient(
        settings, issue_id=issue_id, delivery_id=None, subscriber_id=subscriber.id,
        email=subscriber.email, name=subscriber.name, attributes=subscriber.attributes,
    )  # fmt: skip


async def send_test(
    *, session: AsyncSession, settings: Settings, mailer: Mailer, issue_id: int, emails: list[str]
) -> list[str]:
    """Send the issue at once to each address (no delivery recorded); the addresses sent to.

    Its links lead to the test-message page: nobody is subscribed through a test copy.
    """
    issue = await service.get(session=session, issue_id=issue_id)
    compiled = await service.compiled(settings, issue)
    from_addr = compiled.content.from_addr
    failures: list[str] = []
    sent: list[str] = []
    for address in dict.fromkeys(emails):
        r = compose.recipient(
            settings, issue_id=issue_id, delivery_id=None, subscriber_id=None,
            email=address, name=address.partition("@")[0], attributes={},
        )  # fmt: skip
        message = await asyncio.to_thread(compiled.render_message, r)
        envelope = Envelope(
            sender=compose.envelope_sender(settings, r, from_addr=from_addr),
            recipients=(address,),
            data=await compose.dkim_sign(settings, message),
        )
        try:
            await mailer.send(envelope)
        except DeliveryError as exc:
            failures.append(f"{address}: {exc}")
        else:
            sent.append(address)
    if failures:
        raise MailRefused(f"the mail server refused the test send: {'; '.join(failures)}")
    return sent
