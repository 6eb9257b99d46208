"""Admin API of bounces: report one by hand, and list what every source recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from app.bounces.dsn import BounceEvent, event_key
from app.bounces.policy import record_bounce
from app.db import utcnow
from app.deps import AdminDep, SessionDep, SettingsDep
from app.models import Bounce
from app.pagination import Cursor, Limit, decode_cursor, encode_cursor
from app.subscribers.addresses import email_key

router = APIRouter(prefix="/api/v1/bounces", tags=["bounces"], dependencies=[AdminDep])


class BounceIn(BaseModel):
    """A bounce reported by an operator: by address or by the Message-ID of what bounced."""

    email: str | None = Field(None, max_length=320)
    message_id: str | None = Field(None, max_length=255)
    type: Literal["hard", "soft", "complaint"]
    reason: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _needs_a_target(self) -> BounceIn:
        if not (self.email or "").strip() and not (self.message_id or "").strip():
            raise ValueError("give the bounced address (email) or the message_id")
        for value in (self.email, self.message_id):
            if value and any(c in value for c in "\r\n\x00"):
                raise ValueError("email and message_id cannot contain line breaks or NUL")
        return self


class BounceOut(BaseModel):
    id: int
    email: str | None
    type: str
    source: str
    status: str | None
    diagnostic: str | None
    counts: bool
    subscriber_id: int | None
    delivery_id: int | None
    issue_id: int | None
    created_at: datetime


class BouncePage(BaseModel):
    items: list[BounceOut]
    next_cursor: str | None


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def report_bounce(body: BounceIn, session: SessionDep, settings: SettingsDep) -> dict:
    """Record a bounce or complaint by hand; the same report on the same day is recorded once."""
    email = (body.email or "").strip() or None
    message_id = (body.message_id or "").strip() or None
    # A retried call (timeout, double click) must not count a soft bounce twice.
    key = event_key("api", email and email_key(email), message_id, body.type, body.reason,
                    utcnow().date().isoformat())  # fmt: skip
    event = BounceEvent(
        type=body.type,
        email=email,
        diagnostic=body.reason,
        message_id=message_id,
        event_key=key,
    )
    bounce = await record_bounce(session=session, settings=settings, event=event, source="api")
    return {"recorded": bounce is not None, "id": bounce.id if bounce else None}


@router.get("")
async def list_bounces(
    session: SessionDep,
    email: str | None = Query(None, max_length=320),
    type: Literal["hard", "soft", "complaint", "unsubscribe"] | None = None,  # noqa: A002
    limit: Limit = 100,
    cursor: Cursor = None,
) -> BouncePage:
    """Recorded bounces, newest first, optionally of one address or one type."""
    if email and "\x00" in email:
        raise HTTPException(422, "email cannot contain NUL")
    stmt = select(Bounce).order_by(Bounce.id.desc()).limit(limit + 1)
    if email:
        stmt = stmt.where(Bounce.email == email_key(email))
    if type:
        stmt = stmt.where(Bounce.type == type)
    if (after := decode_cursor(cursor)) is not None:
        stmt = stmt.where(Bounce.id < after)
    rows = list((await session.execute(stmt)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].id) if more else None
    items = [BounceOut.model_validate(r, from_attributes=True) for r in rows]
    return BouncePage(items=items, next_cursor=next_cursor)
