"""The audit log: one entry per successful write, named from the route that made it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session

from app.accounts.models import AuditEntry
from app.pagination import decode_cursor, encode_cursor

# Request fields worth a word in the entry. Never an address, a body or a secret: the
# log outlives an erasure, so it must hold no personal data.
DETAIL_FIELDS = ("slug", "name", "subject", "role", "scopes", "status", "format", "send_at")
# The console's and the API's words for one thing agree, so one action has one name.
SINGULAR = {
    "people": "person",
    "accounts": "person",
    "keys": "api-key",
    "api-keys": "api-key",
    "media": "media",
    "audit": "audit",
    "account": "account",
}


def action_for(method: str, template: str) -> str:
    """`issue.send` for POST /api/v1/issues/{id}/send, `list.create` for POST /admin/lists."""
    parts = [p for p in template.split("/") if p and p not in ("api", "v1", "admin")]
    words = [p for p in parts if not p.startswith("{")]
    if not words:
        return method.lower()
    resource = SINGULAR.get(words[0], words[0].removesuffix("s"))
    verb = words[-1] if len(words) > 1 else ""
    if not verb or verb in ("new", "edit"):
        verb = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}.get(
            method, method.lower()
        )
    elif method == "DELETE":
        verb = f"{verb}.delete"
    return f"{resource}.{verb}"[:64]


def target_for(template: str, params: Mapping[str, Any], created: str) -> str:
    """`issue 5` from the route's first parameter, else what the request created."""
    parts = [p for p in template.split("/") if p and p not in ("api", "v1", "admin")]
    for i, part in enumerate(parts):
        if part.startswith("{") and i > 0:
            resource = SINGULAR.get(parts[i - 1], parts[i - 1].removesuffix("s"))
            return f"{resource} {params.get(part.strip('{}'), '')}"[:200]
    return created


def detail_for(fields: Mapping[str, Any]) -> str:
    """A short line from the request's non-personal fields."""
    bits = []
    for key in DETAIL_FIELDS:
        value = fields.get(key)
        if value not in (None, "", []):
            value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            bits.append(f"{key}={value[:80]}")
    return "; ".join(bits)[:500]


class ChangeWatcher:
    """Notes whether a request's session wrote anything, and the first row it created."""

    def __init__(self) -> None:
        self.changed = False
        self.created = ""

    def _flushed(self, session: Session, _context: Any) -> None:
        if session.new or session.dirty or session.deleted:
            self.changed = True
        for obj in session.new:
            if not self.created:
                table = getattr(obj, "__tablename__", "row")
                ident = getattr(obj, "id", None) or getattr(obj, "slug", None)
                self.created = f"{SINGULAR.get(table, table.removesuffix('s'))} {ident or ''}"

    def _executed(self, state: ORMExecuteState) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            self.changed = True


@contextmanager
def watch(session: AsyncSession) -> Iterator[ChangeWatcher]:
    """Watch the session's writes for the duration of a request."""
    watcher = ChangeWatcher()
    sync = session.sync_session
    event.listen(sync, "after_flush", watcher._flushed)
    event.listen(sync, "do_orm_execute", watcher._executed)
    try:
        yield watcher
    finally:
        event.remove(sync, "after_flush", watcher._flushed)
        event.remove(sync, "do_orm_execute", watcher._executed)


async def record(
    *, session: AsyncSession, actor: str, action: str, target: str = "", detail: str = ""
) -> None:
    """Add an entry in the caller's transaction, so it commits with the write it describes."""
    session.add(
        AuditEntry(actor=actor[:320], action=action[:64], target=target[:200], detail=detail)
    )
    await session.flush()


async def list_entries(
    *, session: AsyncSession, limit: int = 100, cursor: str | None = None
) -> tuple[list[AuditEntry], str | None]:
    """Newest first, by cursor over ids."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(AuditEntry.id < after)
    rows = list(await session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].id) if more and rows else None
