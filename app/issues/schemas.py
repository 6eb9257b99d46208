"""Request and response bodies of the issues API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

IssueStatus = Literal[
    "draft", "scheduled", "sending", "paused", "sent", "cancelled", "active", "inactive"
]
DeliveryStatus = Literal[
    "queued", "sending", "sent", "failed", "skipped", "cancelled", "bounced", "complained"
]
Format = Literal["markdown", "html"]
# SMTP server names (checked against TIDINGS_SMTP_URL by app/delivery/routes.py).
Route = Annotated[list[Annotated[str, Field(min_length=1, max_length=100)]],
                  Field(min_length=1, max_length=20)]  # fmt: skip


def _no_nul(value: object) -> object:
    """PostgreSQL text cannot hold NUL: refuse it as bad input rather than fail on insert."""
    texts = value if isinstance(value, list) else [value]
    if any(isinstance(t, str) and "\x00" in t for t in texts):
        raise ValueError("must not contain the NUL character")
    return value


class TriggerIn(BaseModel):
    """Send the issue to each member who confirms `list`, `after_seconds` after she does."""

    model_config = ConfigDict(extra="forbid")

    list: str = Field(min_length=1, max_length=200)
    # Checked in the service (triggers.check) so a negative delay is a 422 naming it.
    after_seconds: int


class IssueIn(BaseModel):
    """A new issue."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    subject: str = Field(min_length=1, max_length=500)
    preheader: str = Field("", max_length=500)
    from_: str | None = Field(None, alias="from", max_length=400)
    lists: list[str] = Field(min_length=1, max_length=100)
    template: str = Field("newsletter", min_length=1, max_length=64)
    format: Format = "markdown"
    body: str = Field(max_length=500_000)
    # None: in the archive only when every list of the issue is public.
    in_archive: bool | None = None
    # Recipients are the lists' members who also match this segment (app/segments).
    segment: int | None = Field(None, ge=1, le=2**31 - 1)
    # None: tracked unless TIDINGS_TRACKING=off (app/engagement).
    track_opens: bool | None = None
    track_clicks: bool | None = None
    # A triggered issue (welcome, drip): activated, never sent; lists must be [trigger.list].
    trigger: TriggerIn | None = None
    # The SMTP servers (TIDINGS_SMTP_URL's name=) its messages go through; None: all.
    smtp_route: Route | None = None

    _text_without_nul = field_validator("*")(_no_nul)


class IssuePatch(BaseModel):
    """A change to a draft or scheduled issue: only the fields given change."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    subject: str | None = Field(None, min_length=1, max_length=500)
    preheader: str | None = Field(None, max_length=500)
    from_: str | None = Field(None, alias="from", max_length=400)
    lists: list[str] | None = Field(None, min_length=1, max_length=100)
    template: str | None = Field(None, min_length=1, max_length=64)
    format: Format | None = None
    body: str | None = Field(None, max_length=500_000)
    # The one field that may change after sending: an issue can leave the archive.
    in_archive: bool | None = None
    segment: int | None = Field(None, ge=1, le=2**31 - 1)  # null: the whole lists
    track_opens: bool | None = None
    track_clicks: bool | None = None
    smtp_route: Route | None = None  # null: every configured server
    # A draft may gain, change or lose its trigger; an inactive triggered issue may change
    # it (app/issues/triggers.patch). null: no longer triggered (drafts only).
    trigger: TriggerIn | None = None

    _text_without_nul = field_validator("*")(_no_nul)


class IssueOut(BaseModel):
    """An issue as the API shows it."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    subject: str
    preheader: str
    from_: str = Field(serialization_alias="from")
    lists: list[str]
    template: str
    format: str
    body: str
    status: IssueStatus
    status_reason: str | None
    send_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int
    in_archive: bool
    segment: int | None = None
    track_opens: bool = True
    track_clicks: bool = True
    trigger: dict[str, str | int] | None = None
    smtp_route: list[str] | None = None


class IssuePage(BaseModel):
    items: list[IssueOut]
    next_cursor: str | None


class SendIn(BaseModel):
    """When to send: now when send_at is absent or not in the future.

    send_at must carry a UTC offset (`2026-12-01T09:00:00Z` or `+01:00`): a bare local
    time is ambiguous across the admin's, the server's and the readers' zones.
    """

    model_config = ConfigDict(extra="forbid")

    send_at: AwareDatetime | None = None

    @field_validator("send_at", mode="before")
    @classmethod
    def _iso_text(cls, value: object) -> object:
        # Pydantic would read a number as a Unix time; the contract says ISO 8601.
        if value is not None and not isinstance(value, str):
            raise ValueError("send_at must be an ISO 8601 date-time string with an offset")
        return value


class SendOut(BaseModel):
    status: Literal["sending", "scheduled"]
    recipients: int


class TestIn(BaseModel):
    """Addresses to receive a test copy of the issue at once."""

    model_config = ConfigDict(extra="forbid")

    emails: list[EmailStr] = Field(min_length=1, max_length=20)


class TestOut(BaseModel):
    status: Literal["sent"]
    sent: list[str]


class StatsOut(BaseModel):
    status: IssueStatus
    recipients: int
    queued: int
    sent: int
    failed: int
    bounced: int
    complained: int
    unsubscribed: int
    started_at: datetime | None
    finished_at: datetime | None
    messages_per_second: float
    # Engagement (app/engagement/reports.py): machines counted apart and left out of the rest.
    opens: int = 0
    unique_opens: int = 0
    clicks: int = 0
    unique_clicks: int = 0
    machine_opens: int = 0
    machine_clicks: int = 0
    complaint_rate: float = 0.0
    bounce_rate: float = 0.0
    machine_reasons: dict[str, dict[str, int]] = {}


class DeliveryOut(BaseModel):
    id: int
    subscriber_id: int | None
    email: str | None
    status: str
    attempts: int
    last_error: str | None
    message_id: str | None
    sent_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None
