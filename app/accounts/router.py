"""The API of keys and the audit log: /api/v1/api-keys and /api/v1/audit (admin scope)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.accounts import audit, keys
from app.accounts.models import ApiKey
from app.deps import AdminDep, PrincipalDep, SessionDep
from app.pagination import Cursor, Limit, RowId

router = APIRouter(prefix="/api/v1", tags=["keys and audit"], dependencies=[AdminDep])


class KeyIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(min_length=1, max_length=5)


class KeyOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None


class KeyCreated(BaseModel):
    id: int
    name: str
    scopes: list[str]
    key: str
    created_at: datetime


class KeyPage(BaseModel):
    items: list[KeyOut]
    next_cursor: str | None = None


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


def _key_out(key: ApiKey) -> KeyOut:
    return KeyOut.model_validate(key, from_attributes=True)


@router.post("/api-keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyIn, session: SessionDep, principal: PrincipalDep) -> KeyCreated:
    """Create a named key with scopes; the key itself is in this answer only."""
    key, secret = await keys.create_key(
        session=session, name=body.name, scopes=body.scopes, created_by=principal.actor
    )
    return KeyCreated(
        id=key.id, name=key.name, scopes=key.scopes, key=secret, created_at=key.created_at
    )


@router.get("/api-keys", response_model=KeyPage)
async def list_keys(session: SessionDep) -> KeyPage:
    """The keys that work, without their secrets."""
    return KeyPage(items=[_key_out(k) for k in await keys.list_keys(session=session)])


@router.delete("/api-keys/{key_id}", status_code=204)
async def revoke_key(key_id: RowId, session: SessionDep) -> None:
    """Revoke a key: it stops working at once."""
    await keys.revoke_key(session=session, key_id=key_id)


@router.get("/audit", response_model=AuditPage)
async def audit_log(session: SessionDep, limit: Limit = 100, cursor: Cursor = None) -> AuditPage:
    """Who did what, newest first."""
    rows, next_cursor = await audit.list_entries(session=session, limit=limit, cursor=cursor)
    return AuditPage(
        items=[AuditOut.model_validate(r, from_attributes=True) for r in rows],
        next_cursor=next_cursor,
    )
