"""Every table of Tidings. The schema itself lives in the Alembic migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.sql.elements import ColumnElement

from app.db import Base, UTCDateTime, utcnow

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")

# The system issue (migration 0014, status 'system'): the deliveries of transactional
# messages belong to it, so a bounce of one names a real issue row. Ids start at 1, so
# the issue list, the archive and the API (ids >= 1) never show it (app/messages).
MESSAGES_ISSUE = 0


class MailingList(Base):
    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Its public pages' and system emails' language; None: the installation's default.
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # As normalised by email-validator (domain lowercased, IDNA); shown and sent to.
    email: Mapped[str] = mapped_column(String(320))
    # The identity of the mailbox: `email` lowercased. Unique, so two spellings are one person.
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)  # None: no name given
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | blocklisted
    blocklist_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", lazy="selectin"
    )


# A trigram index serves a LIKE '%x%' from this many characters on; a shorter needle has no
# trigram, and through the index would read all of it.
TRIGRAM = 3


def search_text() -> ColumnElement[str]:
    """The address key, a space and the lowercased name: what a substring search reads.

    PostgreSQL's one trigram index for search is on this expression (migration 0017), so a
    query must spell it the same way, the space a literal and not a parameter. One index for
    both fields costs an insert half the index work of one per field. A needle without a
    space matches it exactly where it matches the address or the name; one with a space
    could also match across the two, so its callers test the field itself too.
    """
    name = func.coalesce(func.lower(Subscriber.name), literal_column("''"))
    return Subscriber.email_key.op("||")(literal_column("' '")).op("||")(name)


class Subscription(Base):
    __tablename__ = "subscriptions"
    # Ends with subscriber_id (migration 0008): segments read list membership from it alone.
    __table_args__ = (Index("ix_subscriptions_list_status", "list_id", "status", "subscriber_id"),)

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))  # pending | confirmed | unsubscribed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    mailing_list: Mapped[MailingList] = relationship(lazy="joined")


class Suppression(Base):
    """An address that must never be added back by an admin or an import: only its hash."""

    __tablename__ = "suppressions"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Issue(Base):
    __tablename__ = "issues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(500))
    preheader: Mapped[str] = mapped_column(String(500), default="")
    from_addr: Mapped[str | None] = mapped_column(String(400), nullable=True)
    template: Mapped[str] = mapped_column(String(64), default="newsletter")
    format: Mapped[str] = mapped_column(String(16), default="markdown")
    body: Mapped[str] = mapped_column(Text)
    # draft | scheduled | sending | paused | sent | cancelled
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    # Shown in the public archive; the service sets it from the lists' `public` flags.
    in_archive: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Engagement (migration 0011): the defaults follow TIDINGS_TRACKING at creation.
    track_opens: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    # Narrows the lists to a segment's members (app/segments); the FK is in migration 0008.
    segment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The names of the SMTP servers it goes through (TIDINGS_SMTP_URL's name=); None: all.
    smtp_route: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    lists: Mapped[list[MailingList]] = relationship(secondary="issue_lists", lazy="selectin")


class IssueList(Base):
    __tablename__ = "issue_lists"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )


class Delivery(Base):
    """One recipient of one issue: the per-recipient log and the dispatcher's queue entry.

    A delivery is `queued` until a dispatcher claims it under a lease (`sending`,
    `lease_owner`, `lease_expires_at`). It leaves `sending` only when the SMTP server has
    answered: `sent`, `failed`, or back to `queued` with a later `next_attempt_at`. A
    lease that expires means its dispatcher died; the delivery is claimed again.
    """

    __tablename__ = "deliveries"
    # Fan-out writes a row per recipient, a million in one statement, so every index and
    # constraint here is paid a million times at send time. Measured on PostgreSQL, the two
    # foreign keys alone cost more than the insert itself (a trigger and a KEY SHARE lock
    # per row), so deliveries carry none: an issue with deliveries cannot be deleted (the
    # API allows it only before sending), and erasure clears `subscriber_id` itself. The
    # one composite index serves claiming, stats and the log; the partial one holds only
    # the few rows in flight, for lease renewal and crash recovery.
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id", name="uq_deliveries_issue_subscriber"),
        Index("ix_deliveries_queue", "issue_id", "status", "next_attempt_at"),
        Index(
            "ix_deliveries_inflight",
            "lease_owner",
            "lease_expires_at",
            postgresql_where=text("status = 'sending'"),
            sqlite_where=text("status = 'sending'"),
        ),
        # A transactional message's delivery names its request (migration 0014); partial,
        # so fan-out's rows (NULL) never enter it.
        Index(
            "ix_deliveries_message_ref",
            "message_ref",
            unique=True,
            postgresql_where=text("message_ref IS NOT NULL"),
            sqlite_where=text("message_ref IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(Integer)
    subscriber_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    # queued | sending | sent | failed | skipped | cancelled | bounced | complained
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Our Message-IDs name their delivery under a MAC, so bounces find it without an index.
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    smtp_server: Mapped[str | None] = mapped_column(String(255), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # messages.id for a transactional message (issue_id MESSAGES_ISSUE), else None.
    message_ref: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Bounce(Base):
    """A bounce or complaint from any source, tied to its delivery where known."""

    __tablename__ = "bounces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # A stable key per event (provider id, or a hash of the report): a webhook sent
    # twice is one bounce.
    event_key: Mapped[str] = mapped_column(String(128), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), nullable=True, index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), nullable=True, index=True
    )
    issue_id: Mapped[int | None] = mapped_column(
        ForeignKey("issues.id", ondelete="SET NULL"), nullable=True
    )
    type: Mapped[str] = mapped_column(String(16))  # hard | soft | complaint
    source: Mapped[str] = mapped_column(
        String(16)
    )  # api | dsn | ses | sendgrid | postmark | mailgun | smtp | imap
    status: Mapped[str | None] = mapped_column(String(16), nullable=True)  # RFC 3463 code
    diagnostic: Mapped[str | None] = mapped_column(Text, nullable=True)
    # False for sender-side problems (5.7.x policy, auth): recorded, not held against the address.
    counts: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RateBucket(Base):
    """Shared rate-limit state, so a limit holds across every dispatcher on the database."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)  # epoch seconds
    window_start: Mapped[float] = mapped_column(Float, default=0.0)
    window_count: Mapped[int] = mapped_column(Integer, default=0)
    blocked_until: Mapped[float] = mapped_column(Float, default=0.0)


class Worker(Base):
    """A dispatcher process, seen through its heartbeat."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
