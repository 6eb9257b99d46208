"""Request and response bodies of the transactional messages API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

MessageStatus = Literal["queued", "sending", "sent", "failed"]


class ToSubscriber(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscriber_id: int = Field(ge=1, le=2**31 - 1)


class MessageIn(BaseModel):
    """One message: a layout of email_templates/ rendered with `data` (and `subject`)."""

    model_config = ConfigDict(extra="forbid")

    to: EmailStr | ToSubscriber
    template: str = Field(min_length=1, max_length=64)
    subject: str = Field(min_length=1, max_length=500)
    data: dict[str, Any] = Field(default_factory=dict)
    # The names of the SMTP servers it may go through (TIDINGS_SMTP_URL's name=); None: any.
    smtp_route: list[str] | None = Field(None, min_length=1, max_length=20)


class MessageAccepted(BaseModel):
    id: int
    status: MessageStatus


class MessageOut(BaseModel):
    id: int
    status: MessageStatus
    attempts: int
    last_error: str | None
    sent_at: datetime | None
