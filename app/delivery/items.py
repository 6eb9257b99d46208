"""What the feeders hand the senders: one message ready to go, through one transport."""

from __future__ import annotations

from dataclasses import dataclass

from app.delivery.transport import Envelope, Transport


@dataclass(frozen=True, slots=True)
class Item:
    """One message ready for a sender (a bulk delivery's, or a transactional message's)."""

    id: int  # the delivery's
    issue_id: int  # models.MESSAGES_ISSUE for a transactional message
    attempts: int
    transport: Transport
    envelope: Envelope
    message_id: str
