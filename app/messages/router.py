"""POST /api/v1/messages (with an optional Idempotency-Key) and GET /api/v1/messages/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from app.deps import AdminDep, SessionDep, SettingsDep
from app.messages import service
from app.messages.schemas import MessageAccepted, MessageIn, MessageOut
from app.pagination import RowId

router = APIRouter(prefix="/api/v1/messages", tags=["messages"], dependencies=[AdminDep])


@router.post("", status_code=202, response_model=MessageAccepted)
async def post_message(
    data: MessageIn,
    session: SessionDep,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> MessageAccepted:
    """Queue one transactional message, sent ahead of bulk issues."""
    accepted = await service.create(session=session, settings=settings, data=data,
                                    key=idempotency_key)  # fmt: skip
    return MessageAccepted(**accepted)


@router.get("/{message_id}", response_model=MessageOut)
async def get_message(message_id: RowId, session: SessionDep) -> MessageOut:
    """Where one message stands: queued, sending, sent or failed, and why."""
    return MessageOut(**await service.get(session=session, message_id=message_id))
