"""Writing an import: one batch of validated rows, one transaction, a handful of statements.

The rules (who is created, updated, skipped, joined or confirmed) are decided once, in
`plan_batch`, from what the database holds; each backend then only looks up and writes.
Like every confirmation, a batch's enrols its people in the list's active triggered
issues and writes its webhook events (`subscriber.created`, `subscriber.confirmed`, one
per person) in its own transaction, each set-based: a statement per batch, not per row.
PostgreSQL goes through asyncpg directly with arrays (`= ANY($1)`, `unnest`): a whole
batch is a few parameters encoded in C, not thousands of bind values that SQLAlchemy
would process one by one, which was most of the write cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps's own, in C
from typing import Any

import asyncpg
from sqlalchemy import bindparam, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import UTCDateTime, utcnow
from app.issues import triggers
from app.models import Subscriber, Subscription
from app.subscribers import memberships
from app.subscribers.addresses import suppression_hash
from app.subscribers.csvrows import Row
from app.webhooks import events

# subscriber id, name, attributes, person's status, membership of this list (or None)
Known = tuple[int, str, dict[str, Any], str, str | None]


@dataclass
class Plan:
    new: list[Row] = field(default_factory=list)
    changes: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    join: list[int] = field(default_factory=list)  # existing, active, not yet on the list
    confirm: list[int] = field(default_factory=list)  # existing, active, pending on the list
    updated: int = 0
    skipped: int = 0


def plan_batch(rows: list[Row], suppressed: set[str], known: dict[str, Known]) -> Plan:
    """What to do with each row, given the suppressed hashes and the known subscribers."""
    plan = Plan()
    if not suppressed and not known:  # a fresh import's batch: every row is a new person
        plan.new = list(rows)
        return plan
    for row in rows:
        if suppressed and suppression_hash(row.key) in suppressed:
            plan.skipped += 1
            continue
        existing = known.get(row.key)
        if existing is None:
            plan.new.append(row)
            continue
        sid, name, attrs, status, membership = existing
        try:
            moved = memberships.next_status(membership, "confirmed", actor="import")
        except memberships.OptedOut:
            plan.skipped += 1  # her opt-out is undone only by her, never by an import
            continue
        if status != "active":
            plan.skipped += 1  # a blocklisted address is never reactivated by an import
            continue
        merged = {**attrs, **row.attributes}
        new_name = row.name or name
        changed = merged != attrs or new_name != name
        if changed:
            plan.changes.append((sid, new_name, merged))
        if moved is not None:
            (plan.join if membership is None else plan.confirm).append(sid)
        if changed or moved is not None:
            plan.updated += 1
        else:
            plan.skipped += 1
    return plan


# Custom plans for the statements that read by a batch's keys: a generic plan made while
# the table was still empty would scan it, ever slower as the import grows it. The arrays
# are behind a sub-select, so the planner does not weigh thousands of values one by one.
_CUSTOM_PLANS = "SET LOCAL plan_cache_mode = force_custom_plan"
_PG_JOIN = (
    "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)"
    " SELECT unnest($1::bigint[]), $2, 'confirmed', $3, $3"
)
_PG_JOIN_KNOWN = " ON CONFLICT DO NOTHING RETURNING subscriber_id"


def attributes_json(attributes: dict[str, str]) -> str:
    """json.dumps(attributes), the same text, for a dict of strings at a third of the cost."""
    return "{" + ", ".join([f"{_quoted(k)}: {_quoted(v)}" for k, v in attributes.items()]) + "}"


_PG_INSERT_PEOPLE = (
    "INSERT INTO subscribers (email, email_key, name, attributes, status, created_at, updated_at)"
    " SELECT e, k, n, a::json, 'active', $5, $5"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(e, k, n, a)"
)


async def _insert_people(conn: asyncpg.Connection, rows: list[Row], now: datetime) -> list[int]:
    """Insert the people the lookup did not find; their ids, less any who signed up since."""
    values = (
        [r.email for r in rows],
        [r.key for r in rows],
        [r.name for r in rows],
        [attributes_json(r.attributes) for r in rows],
        now,
    )
    # A plain INSERT in a savepoint: ON CONFLICT's own check of every row cost more than
    # the rare case it is for (an address signed up since the lookup), which does it again.
    try:
        async with conn.transaction():
            made = await conn.fetch(_PG_INSERT_PEOPLE + " RETURNING id", *values)
    except asyncpg.UniqueViolationError:
        made = await conn.fetch(
            _PG_INSERT_PEOPLE + " ON CONFLICT (email_key) DO NOTHING RETURNING id", *values
        )
    return [sid for (sid,) in made]


async def write_batch_pg(
    conn: asyncpg.Connection, *, list_id: int, rows: list[Row], wanted: frozenset[str]
) -> tuple[int, int, int]:
    """PostgreSQL: (created, updated, skipped) of one batch, in the caller's transaction.

    `wanted`: the events some webhook subscribes to (events.subscribed_events).
    """
    now = utcnow()
    # No fsync wait per batch: a crash can lose only the last batches, and re-running an
    # import is harmless (it changes nothing twice). No bitmap scans: migration 0010's
    # trigram index on email_key answered `=` too, and early in an import, everything still
    # in its pending list, it looked cheapest for the batch's keys, which it matched by
    # trigrams against every row (126 s for one batch). 0017's index is on an expression no
    # lookup spells; plain index scans keep the unique index the only choice all the same.
    await conn.execute(
        "SET LOCAL synchronous_commit = off; SET LOCAL enable_bitmapscan = off; " + _CUSTOM_PLANS
    )
    suppressed: set[str] = set()
    if await conn.fetchval("SELECT EXISTS (SELECT FROM suppressions)"):  # else no hashing
        hashes = [suppression_hash(r.key) for r in rows]
        found_hashes = await conn.fetch(
            "SELECT email_hash FROM suppressions"
            " WHERE email_hash = ANY((SELECT $1::text[])::text[])",
            hashes,
        )
        suppressed = {h for (h,) in found_hashes}
    found = await conn.fetch(
        "SELECT s.id, s.email_key, s.name, s.attributes::text, s.status, m.status"
        " FROM subscribers s LEFT JOIN subscriptions m"
        "   ON m.subscriber_id = s.id AND m.list_id = $2"
        " WHERE s.email_key = ANY((SELECT $1::text[])::text[])",
        [r.key for r in rows],
        list_id,
    )
    known = {k: (i, n, json.loads(a) if a else {}, s, m) for i, k, n, a, s, m in found}
    plan = plan_batch(rows, suppressed, known)
    created = await _insert_people(conn, plan.new, now) if plan.new else []
    plan.skipped += len(plan.new) - len(created)  # signed up by someone else meanwhile
    confirmed: list[int] = []  # memberships this batch made confirmed
    if created or plan.join:
        # Two foreign-key checks a membership, each a cached plan: planned afresh for every
        # row, they were half the batch's time.
        await conn.execute("SET LOCAL plan_cache_mode = DEFAULT")
        if created:
            # People this transaction made: no one else can have a membership of theirs yet.
            await conn.execute(_PG_JOIN, created, list_id, now)
            confirmed += created
        if plan.join:
            joined = await conn.fetch(_PG_JOIN + _PG_JOIN_KNOWN, plan.join, list_id, now)
            confirmed += [sid for (sid,) in joined]
        await conn.execute(_CUSTOM_PLANS)
    if plan.confirm:
        # Still pending: one who left meanwhile is not taken back by the import.
        confirmed += [
            sid
            for (sid,) in await conn.fetch(
                "UPDATE subscriptions SET status = 'confirmed', confirmed_at = $3,"
                " unsubscribed_at = NULL"
                " WHERE list_id = $2 AND subscriber_id = ANY((SELECT $1::bigint[])::bigint[])"
                " AND status = 'pending' RETURNING subscriber_id",
                plan.confirm,
                list_id,
                now,
            )
        ]
    await triggers.enrol_batch_pg(conn, list_id, confirmed, now)
    for event, ids in (("subscriber.created", created), ("subscriber.confirmed", confirmed)):
        if event in wanted:
            await events.emit_people_pg(conn, event, list_id=list_id, ids=ids, now=now)
    if plan.changes:
        await conn.execute(
            "UPDATE subscribers s SET name = c.n, attributes = c.a::json, updated_at = $4"
            " FROM unnest($1::bigint[], $2::text[], $3::text[]) AS c(id, n, a)"
            " WHERE s.id = c.id",
            [c[0] for c in plan.changes],
            [c[1] for c in plan.changes],
            [json.dumps(c[2]) for c in plan.changes],
            now,
        )
    return len(created), plan.updated, plan.skipped


# Each batch travels as one JSON parameter unpacked by json_each: SQLAlchemy processes two
# bind values instead of seven per row, and the INSERT keeps its RETURNING.
_SQLITE_INSERT_SUBSCRIBERS = text(
    "INSERT INTO subscribers"
    " (email, email_key, name, attributes, status, created_at, updated_at)"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]'), 'active', :now, :now"
    " FROM json_each(:rows) WHERE true"  # WHERE: SQLite's parser needs it before ON CONFLICT
    " ON CONFLICT (email_key) DO NOTHING RETURNING id"
).bindparams(bindparam("now", type_=UTCDateTime))
_SQLITE_INSERT_SUBSCRIPTIONS = text(
    "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)"
    " SELECT value, :list_id, 'confirmed', :now, :now FROM json_each(:ids) WHERE true"
    " ON CONFLICT DO NOTHING RETURNING subscriber_id"
).bindparams(bindparam("now", type_=UTCDateTime))
_SQLITE_KNOWN = text(
    "SELECT s.id, s.email_key, s.name, s.attributes, s.status, m.status"
    " FROM subscribers s LEFT JOIN subscriptions m"
    "   ON m.subscriber_id = s.id AND m.list_id = :list_id"
    " WHERE s.email_key IN (SELECT value FROM json_each(:keys))"
)
_SQLITE_SUPPRESSED = text(
    "SELECT email_hash FROM suppressions WHERE email_hash IN (SELECT value FROM json_each(:hashes))"
)


async def write_batch_sqlite(
    session: AsyncSession, *, list_id: int, rows: list[Row]
) -> tuple[int, int, int]:
    """SQLite: the same batch in the caller's transaction."""
    now = utcnow()
    hashes = json.dumps([suppression_hash(r.key) for r in rows])
    suppressed = set(await session.scalars(_SQLITE_SUPPRESSED, {"hashes": hashes}))
    found = await session.execute(
        _SQLITE_KNOWN, {"list_id": list_id, "keys": json.dumps([r.key for r in rows])}
    )
    known = {k: (i, n, json.loads(a) if a else {}, s, m) for i, k, n, a, s, m in found}
    plan = plan_batch(rows, suppressed, known)
    created: list[int] = []
    if plan.new:
        values = [[r.email, r.key, r.name, json.dumps(r.attributes)] for r in plan.new]
        inserted = await session.execute(
            _SQLITE_INSERT_SUBSCRIBERS, {"rows": json.dumps(values), "now": now}
        )
        created = list(inserted.scalars())
        plan.skipped += len(plan.new) - len(created)
    confirmed: list[int] = []  # memberships this batch made confirmed
    if created or plan.join:
        inserted = await session.execute(
            _SQLITE_INSERT_SUBSCRIPTIONS,
            {"ids": json.dumps(created + plan.join), "list_id": list_id, "now": now},
        )
        confirmed += list(inserted.scalars())
    if plan.confirm:
        moved = await session.scalars(
            update(Subscription)
            .where(
                Subscription.list_id == list_id,
                Subscription.subscriber_id.in_(plan.confirm),
                Subscription.status == "pending",
            )
            .values(**memberships.stamps("confirmed", now))
            .returning(Subscription.subscriber_id)
        )
        confirmed += list(moved)
    await triggers.enrol_batch(session, list_id, confirmed, now)
    for event, ids in (("subscriber.created", created), ("subscriber.confirmed", confirmed)):
        await events.emit_people_sqlite(session, event, list_id=list_id, ids=ids, now=now)
    if plan.changes:
        await session.execute(
            update(Subscriber),
            [
                {"id": sid, "name": name, "attributes": attrs, "updated_at": now}
                for sid, name, attrs in plan.changes
            ],
        )
    return len(created), plan.updated, plan.skipped
