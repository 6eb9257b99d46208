"""The outbox writer: `emit` adds an event row in the caller's transaction.

The row is written with a Core insert through whatever the caller holds (an ORM session
or the public sign-up's Core connection), so it commits or rolls back with the change:
an event exists exactly when its change does, and a crash between the two is impossible.
Nothing is sent here: the sender (sender.py) reads the outbox, so a slow receiver never
slows the request that caused the event.

A system without webhooks should pay nothing for this, so each process remembers for a
few seconds which events some enabled webhook subscribes to and writes no row for the
others. A webhook created in another process is seen within CACHE_SECONDS; one created
here is seen at once (the service calls `forget_subscriptions`).

What each event's `data` holds:
  subscriber.created                          {"id", "email", "name"}
  subscriber.confirmed, subscriber.unsubscribed {"id", "email", "name", "list": SLUG}, one
      per (person, list) that moved, from every path: the admin API, the public sign-up,
      the confirm link, the preference page, one-click, bounces' unsubscribes, imports
  subscriber.erased                           {"id"} (nothing of the person is left)
  bounce.recorded, complaint.recorded         the bounce row (bounce_recorded below)
  issue.started {"id", "recipients"}, issue.finished {"id"}; link.clicked: app/engagement
An import writes the same one event per person, set-based (emit_people_*).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db import UTCDateTime, utcnow
from app.webhooks.models import Webhook, WebhookEvent

EVENTS = (
    "subscriber.created",
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.erased",
    "bounce.recorded",
    "complaint.recorded",
    "issue.started",
    "issue.finished",
    "link.clicked",  # written by app/engagement/rollups.py
)
TEST_EVENT = "webhook.test"  # sent only to the one webhook that asked for it
CACHE_SECONDS = 5.0

_subscribed: dict[str, tuple[float, frozenset[str]]] = {}


def forget_subscriptions() -> None:
    """Drop this process's memory of who subscribes to what (after a webhook changes)."""
    _subscribed.clear()


def _database_key(conn: AsyncSession | AsyncConnection) -> str:
    bind = conn.get_bind() if isinstance(conn, AsyncSession) else conn.sync_connection
    url = bind.engine.url if bind is not None else None
    return url.render_as_string(hide_password=True) if url is not None else ""


async def subscribed_events(conn: AsyncSession | AsyncConnection) -> frozenset[str]:
    """The events at least one enabled webhook subscribes to, remembered CACHE_SECONDS."""
    key = _database_key(conn)
    now = time.monotonic()
    cached = _subscribed.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    rows = await conn.execute(select(Webhook.events).where(Webhook.enabled.is_(True)))
    events = frozenset(e for (names,) in rows for e in names or ())
    _subscribed[key] = (now + CACHE_SECONDS, events)
    return events


def new_event_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


async def emit(
    conn: AsyncSession | AsyncConnection, event: str, data: dict[str, Any], *, when: object = True
) -> None:
    """Add `event` to the outbox in the caller's transaction, if any webhook wants it.

    `when` lets a call site stay one line: a falsy value (nothing changed) emits nothing.
    """
    if not when or event not in await subscribed_events(conn):
        return
    await conn.execute(
        insert(WebhookEvent).values(
            id=new_event_id(), type=event, data=data, created_at=utcnow(), fanned_out=False
        )
    )


def subscriber_data(subscriber: Any) -> dict[str, Any]:
    """What the subscriber.* events carry about the person."""
    return {"id": subscriber.id, "email": subscriber.email, "name": subscriber.name}


# A membership that moves to one of these statuses is announced, one event per
# (person, list): `{"id", "email", "name", "list": SLUG}`.
MEMBERSHIP_EVENTS = {"confirmed": "subscriber.confirmed", "unsubscribed": "subscriber.unsubscribed"}


async def membership_moved(
    conn: AsyncSession | AsyncConnection, person: dict[str, Any], moves: list[tuple[str, str]]
) -> None:
    """subscriber.confirmed / .unsubscribed for each (new status, list slug) in `moves`."""
    for status, slug in moves:
        if status in MEMBERSHIP_EVENTS:
            await emit(conn, MEMBERSHIP_EVENTS[status], {**person, "list": slug})


# Imports announce their people set-based: one INSERT ... SELECT of outbox rows per batch
# and event, the same one event per person as every other path writes (a receiver sees
# one shape whatever the source). The id is generated in SQL, in new_event_id's format.
_PERSON = "'id', s.id, 'email', s.email, 'name', s.name"
_FROM = " FROM subscribers s JOIN lists l ON l.id = {list} WHERE s.id {ids}"
_PG_EVENTS = (  # constant fragments only; every value is bound
    "INSERT INTO webhook_events (id, type, data, created_at, fanned_out)"  # noqa: S608
    " SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), $1::text,"
    " json_build_object({fields}), $4::timestamptz, false"
    + _FROM.format(list="$3::int", ids="= ANY($2::bigint[])")
)
_SQLITE_EVENTS = (  # constant fragments only; every value is bound
    "INSERT INTO webhook_events (id, type, data, created_at, fanned_out)"  # noqa: S608
    " SELECT 'msg_' || lower(hex(randomblob(16))), :type, json_object({fields}), :now, 0"
    + _FROM.format(list=":list_id", ids="IN (SELECT value FROM json_each(:ids))")
)


def _fields(event: str) -> str:
    return _PERSON if event == "subscriber.created" else _PERSON + ", 'list', l.slug"


async def emit_people_pg(
    conn: Any, event: str, *, list_id: int, ids: list[int], now: datetime
) -> None:
    """`event` for each subscriber in `ids`, on an asyncpg connection in its transaction.

    The caller asks `subscribed_events` first (this connection is not SQLAlchemy's).
    """
    if ids:
        await conn.execute(_PG_EVENTS.format(fields=_fields(event)), event, ids, list_id, now)


async def emit_people_sqlite(
    session: AsyncSession, event: str, *, list_id: int, ids: list[int], now: datetime
) -> None:
    """The same on SQLite, through the caller's session, if any webhook wants `event`."""
    if ids and event in await subscribed_events(session):
        stmt = text(_SQLITE_EVENTS.format(fields=_fields(event))).bindparams(
            bindparam("now", type_=UTCDateTime)
        )
        params = {"type": event, "list_id": list_id, "ids": json.dumps(ids), "now": now}
        await session.execute(stmt, params)


async def emit_each(
    conn: AsyncSession | AsyncConnection, event: str, items: list[dict[str, Any]]
) -> None:
    """One `event` per item (issues finished together, people who signed up together), in
    the caller's transaction."""
    for data in items:
        await emit(conn, event, data)


_BOUNCE_FIELDS = ("type", "email", "subscriber_id", "delivery_id", "issue_id", "status", "source")


async def bounce_recorded(session: AsyncSession, bounce_id: int, values: dict[str, Any]) -> None:
    """bounce.recorded for a hard or soft bounce, complaint.recorded for a complaint."""
    kind = values.get("type")
    if kind not in ("hard", "soft", "complaint"):
        return  # a provider's unsubscribe report is not a bounce
    event = "complaint.recorded" if kind == "complaint" else "bounce.recorded"
    await emit(session, event, {"id": bounce_id, **{k: values.get(k) for k in _BOUNCE_FIELDS}})
