"""What one flush writes: each kind of row by one compiled statement, in slices.

A statement executed with a list of parameter sets (executemany, on the Core connection)
is compiled once per process and bound by the driver; the multi-row VALUES clause this
replaced was compiled afresh for every batch, ~0.3 ms a row on the event loop, and that
was where a redirect's tail latency came from. Slices of SLICE rows, each awaited, keep
any one stretch of the loop's time under a few milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.db import on_postgresql, utcnow
from app.engagement.models import EngagementCount, EngagementEvent
from app.webhooks import events as webhooks
from app.webhooks.models import WebhookEvent

SLICE = 100
BIG_SLICE = 1000  # rows of one statement whose rows the database itself takes apart
Cell = tuple[int, str, int, datetime, str]  # issue, kind, link index, hour, verdict ('' person)
Seen = tuple[int, str, int, str]  # issue, kind, link index (-1 any link), delivery digest
_COUNTS: Table = EngagementCount.__table__  # type: ignore[assignment]
_EVENTS: Table = EngagementEvent.__table__  # type: ignore[assignment]
_OUTBOX: Table = WebhookEvent.__table__  # type: ignore[assignment]


@dataclass
class Judged:
    """A batch of hits added up: rollup cells, uniques to check, event rows, people's clicks."""

    counts: dict[Cell, list[int]] = field(default_factory=dict)  # cell -> [total, uniq]
    seen: dict[Seen, list[int]] = field(default_factory=dict)  # a first sighting? -> its cell
    events: list[dict[str, Any]] = field(default_factory=list)
    clicks: list[dict[str, Any]] = field(default_factory=list)  # link.clicked payloads
    announce: bool = False  # whether some webhook wants link.clicked (else no payloads)


async def announcing(session: AsyncSession) -> bool:
    """Whether some enabled webhook subscribes to link.clicked (remembered a few seconds)."""
    return "link.clicked" in await webhooks.subscribed_events(session)


async def write(session: AsyncSession, judged: Judged) -> None:
    """Uniques, rollups, events and link.clicked, in the caller's transaction."""
    conn = await session.connection()
    dialect = postgresql if on_postgresql(conn) else sqlite
    await _uniques(conn, judged)
    await _counts(conn, dialect, judged.counts)
    await _many(conn, insert(_EVENTS), judged.events)
    await _clicked(conn, judged.clicks)


async def _many(conn: AsyncConnection, stmt: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), SLICE):
        await conn.execute(stmt, rows[start : start + SLICE])


# The slice's digests as one parameter (a JSON array on SQLite, arrays on PostgreSQL):
# one statement the database takes apart in C, with nothing bound per row in Python.
_SEEN_SQLITE = text(
    "INSERT INTO engagement_seen (issue_id, kind, link_idx, digest)"
    " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
    " json_extract(value, '$[2]'), json_extract(value, '$[3]')"
    " FROM json_each(:rows) WHERE true"  # WHERE: SQLite's upsert after a SELECT needs one
    " ON CONFLICT DO NOTHING RETURNING issue_id, kind, link_idx, digest"
)
_SEEN_PG = text(
    "INSERT INTO engagement_seen (issue_id, kind, link_idx, digest)"
    " SELECT * FROM unnest(CAST(:issues AS integer[]), CAST(:kinds AS varchar[]),"
    " CAST(:links AS integer[]), CAST(:digests AS varchar[]))"
    " ON CONFLICT DO NOTHING RETURNING issue_id, kind, link_idx, digest"
)


async def _uniques(conn: AsyncConnection, judged: Judged) -> None:
    """Count a person's first open, first click of each link and first click at all: the
    digests the insert adds (ON CONFLICT DO NOTHING ... RETURNING) are the first ones."""
    keys = list(judged.seen)
    for start in range(0, len(keys), BIG_SLICE):
        part = keys[start : start + BIG_SLICE]
        if on_postgresql(conn):
            columns = list(zip(*part, strict=True))
            params = {"issues": list(columns[0]), "kinds": list(columns[1]),
                      "links": list(columns[2]), "digests": list(columns[3])}  # fmt: skip
            result = await conn.execute(_SEEN_PG, params)
        else:
            result = await conn.execute(_SEEN_SQLITE, {"rows": json.dumps(part)})
        for new in result:
            judged.seen[(int(new[0]), str(new[1]), int(new[2]), str(new[3]))][1] += 1


async def _counts(conn: AsyncConnection, dialect: Any, counts: dict[Cell, list[int]]) -> None:
    stmt = dialect.insert(_COUNTS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["issue_id", "kind", "link_idx", "bucket", "verdict"],
        set_={"total": _COUNTS.c.total + stmt.excluded.total,
              "uniq": _COUNTS.c.uniq + stmt.excluded.uniq},
    )  # fmt: skip
    rows = [{"issue_id": i, "kind": k, "link_idx": x, "bucket": b, "verdict": v,
             "total": t, "uniq": u} for (i, k, x, b, v), (t, u) in counts.items()]  # fmt: skip
    await _many(conn, stmt, rows)


async def _clicked(conn: AsyncConnection, clicks: list[dict[str, Any]]) -> None:
    """link.clicked for each person's click (made only if some webhook wants it): the
    outbox rows webhooks.emit writes one at a time, here in slices of one statement."""
    if not clicks:
        return
    now = utcnow()
    rows = [{"id": webhooks.new_event_id(), "type": "link.clicked", "data": data,
             "created_at": now, "fanned_out": False} for data in clicks]  # fmt: skip
    await _many(conn, insert(_OUTBOX), rows)
