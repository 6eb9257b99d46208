"""The import's two writes by the import's own statements, and by COPY: PostgreSQL's CPU a row.

`python -m bench.import_copy [ROWS]` makes the real schema in a fresh database (the
migrations: the unique key, the trigram index, both foreign keys and the count triggers)
and writes ROWS new people and their memberships in batches of 5,000, three rounds of
each way, on one connection:

- "insert": app/subscribers/import_writes.py's statements (INSERT … SELECT FROM unnest of
  the batch's columns, then its memberships the same way);
- "copy": COPY of the batch into `subscribers` (asyncpg's binary copy_records_to_table),
  their ids read back by key, then COPY of their memberships.

The backend's own CPU (/proc) a row is the figure: the import's bound is the database's
work for each row, and this says how much of it the way rows are sent decides.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg

from app.subscribers.import_writes import _PG_INSERT_PEOPLE, _PG_JOIN
from bench.infra import backend_cost_rounds

BATCH = 5_000


def _people(first: int, n: int) -> list[tuple[str, str, str, str]]:
    out = []
    for i in range(first, first + n):
        email = f"reader{i}@example.org"
        out.append((email, email, f"Reader Nümber {i}", '{"plan": "pro"}'))
    return out


async def by_insert(conn: asyncpg.Connection, list_id: int, people: list[tuple]) -> None:
    now = datetime.now(UTC)
    columns = [list(c) for c in zip(*people, strict=True)]
    ids = [r[0] for r in await conn.fetch(_PG_INSERT_PEOPLE + " RETURNING id", *columns, now)]
    await conn.execute(_PG_JOIN, ids, list_id, now)


async def by_copy(conn: asyncpg.Connection, list_id: int, people: list[tuple]) -> None:
    now = datetime.now(UTC)
    await conn.copy_records_to_table(
        "subscribers",
        records=[(e, k, n, a, "active", now, now) for e, k, n, a in people],
        columns=["email", "email_key", "name", "attributes", "status", "created_at",
                 "updated_at"],
    )  # fmt: skip
    keys = [p[1] for p in people]
    ids = await conn.fetch("SELECT id FROM subscribers WHERE email_key = ANY($1::text[])", keys)
    await conn.copy_records_to_table(
        "subscriptions",
        records=[(i, list_id, "confirmed", now, now) for (i,) in ids],
        columns=["subscriber_id", "list_id", "status", "created_at", "confirmed_at"],
    )


async def main(rows: int) -> None:
    list_id = 0

    async def setup(conn: asyncpg.Connection) -> None:
        nonlocal list_id
        # COPY is binary: json goes as its text's bytes (its binary form is the text).
        await conn.set_type_codec("json", encoder=str.encode, decoder=bytes.decode,
                                  schema="pg_catalog", format="binary")  # fmt: skip
        list_id = await conn.fetchval(
            "INSERT INTO lists (slug, name, description, double_opt_in, public, created_at)"
            " VALUES ('weekly', 'Weekly', '', false, true, now()) RETURNING id"
        )

    def batches(way: Any, offset: int) -> Any:
        async def run(conn: asyncpg.Connection, round_: int) -> int:
            first = 1 + (2 * round_ + offset) * rows  # new people every time
            for lo in range(0, rows, BATCH):
                async with conn.transaction():
                    await way(conn, list_id, _people(first + lo, min(BATCH, rows - lo)))
            return rows

        return run

    await backend_cost_rounds({"insert": batches(by_insert, 0), "copy": batches(by_copy, 1)},
                              setup=setup)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
