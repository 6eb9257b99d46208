"""Admin API of bounces: report one by hand, and list what every source recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field, model_validator

from app.bounces.log import browse_bounces
from app.bounces.service import report_by_hand
from app.deps import AdminDep, SessionDep, SettingsDep
from app.pagination import Cursor, Limit, decode_cursor, encode_cursor

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
    bounce = await report_by_hand(session=session, settings=settings, type=body.type,
                                  email=body.email, message_id=body.message_id,
                                  reason=body.reason)  # fmt: skip
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
    rows = await browse_bounces(session=session, limit=limit + 1, before=decode_cursor(cursor),
                                email=email, type=type)  # fmt: skip
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].id) if more else None
    items = [BounceOut.model_validate(r, from_attributes=True) for r in rows]
    return BouncePage(items=items, next_cursor=next_cursor)
