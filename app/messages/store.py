"""The messages table (migration 0013) and how one message is rendered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, Integer, MetaData, String, Table, Text

from app.db import UTCDateTime
from app.issues import rendering

_meta = MetaData()
messages = Table(
    "messages",
    _meta,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String(200)),
    Column("request_hash", String(64), nullable=False),
    Column("email", String(320), nullable=False),
    Column("subscriber_id", Integer),
    Column("template", String(64), nullable=False),
    Column("subject", String(500), nullable=False),
    Column("data", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UTCDateTime),
    Column("message_id", String(300)),
    Column("sent_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
)


def render(
    *, template: str, subject: str, data: dict[str, Any], email: str, from_addr: str
) -> bytes:
    """The message as RFC 5322 bytes; `data` and `subject` reach the sandbox by those names."""
    return rendering.render_system_email(
        template, to_email=email, to_name="", from_addr=from_addr,
        context={"data": data, "subject": subject},
    )  # fmt: skip
