"""The engagement tables (migration 0011): link tables, rollups, seen digests, events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime

BigId = BigInteger().with_variant(Integer(), "sqlite")


class IssueLink(Base):
    """One tracked link of an issue: where link `idx` of its messages leads."""

    __tablename__ = "issue_links"

    issue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)


class EngagementCount(Base):
    """A rollup: opens or clicks of one issue's link in one hour, for one verdict."""

    __tablename__ = "engagement_counts"

    issue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # open | click
    link_idx: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 for opens
    bucket: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    verdict: Mapped[str] = mapped_column(String(32), primary_key=True)  # '' person, else reason
    total: Mapped[int] = mapped_column(Integer, default=0)
    uniq: Mapped[int] = mapped_column(Integer, default=0)


class EngagementSeen(Base):
    """A keyed digest of a delivery already counted once for (kind, link): unique counts."""

    __tablename__ = "engagement_seen"

    issue_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    link_idx: Mapped[int] = mapped_column(Integer, primary_key=True)  # -1: any link
    digest: Mapped[str] = mapped_column(String(16), primary_key=True)


class EngagementEvent(Base):
    """One open or click of one recipient (`individual` mode only), with its evidence."""

    __tablename__ = "engagement_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    issue_id: Mapped[int] = mapped_column(Integer)
    delivery_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(8))
    link_idx: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    machine: Mapped[bool] = mapped_column(Boolean)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
