"""PostgreSQL's CPU a delivery: rows written queued then claimed, or written already claimed.

`python -m bench.claimed_rows [ROWS]` makes the real schema in a fresh database (the
migrations) and, on one connection, writes ROWS deliveries both ways, three rounds each,
in the shapes the dispatcher uses: the old batched send (an INSERT … SELECT of queued
rows, claims of 180 by UPDATE … RETURNING, results of 60 by UPDATE … FROM unnest) and the
new one (app/delivery/takes.py: INSERTs of 180 rows as `sending` under a lease, the same
results). The backend's own CPU (/proc) is divided by the rows: no sink, no worker, no
network in the figure, only the database's work for each row's versions and index entries.
"""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from bench.infra import backend_cost_rounds

CLAIM, RESULTS = 180, 60
_RESULT = (
    "UPDATE deliveries AS d SET status = 'sent', lease_owner = NULL, lease_expires_at = NULL,"
    " message_id = v.mid, sent_at = now() FROM unnest($1::bigint[], $2::text[]) AS v(id, mid)"
    " WHERE d.id = v.id AND d.lease_owner = 'w' AND d.status = 'sending'"
)
_QUEUED = (
    "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, next_attempt_at)"
    " SELECT $1, g, 'queued', 0, now() FROM generate_series(1, $2::bigint) AS g"
)
_CLAIM = (
    "UPDATE deliveries SET status = 'sending', lease_owner = 'w', attempts = attempts + 1,"
    " lease_expires_at = now() + interval '2 min' WHERE id = ANY(ARRAY(SELECT id FROM"
    " deliveries WHERE issue_id = $1 AND status = 'queued' AND next_attempt_at <= now()"
    " ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)) RETURNING id"
)
_CLAIMED = (
    "INSERT INTO deliveries (issue_id, subscriber_id, status, attempts, next_attempt_at,"
    " lease_owner, lease_expires_at) SELECT $1, g, 'sending', 1, now(), 'w',"
    " now() + interval '2 min' FROM generate_series($2::bigint + 1, $2::bigint + $3) AS g"
    " ON CONFLICT (issue_id, subscriber_id) DO NOTHING RETURNING id"
)


async def _results(conn: asyncpg.Connection, ids: list[int]) -> None:
    for k in range(0, len(ids), RESULTS):
        chunk = ids[k : k + RESULTS]
        await conn.execute(_RESULT, chunk, [f"<{i}@bench>" for i in chunk])


async def queued_then_claimed(conn: asyncpg.Connection, issue: int, rows: int) -> None:
    await conn.execute(_QUEUED, issue, rows)
    while True:
        async with conn.transaction():
            claimed = await conn.fetch(_CLAIM, issue, CLAIM)
        if not claimed:
            return
        await _results(conn, [r[0] for r in claimed])


async def written_claimed(conn: asyncpg.Connection, issue: int, rows: int) -> None:
    for cursor in range(0, rows, CLAIM):
        async with conn.transaction():
            claimed = await conn.fetch(_CLAIMED, issue, cursor, min(CLAIM, rows - cursor))
        await _results(conn, [r[0] for r in claimed])


async def main(rows: int) -> None:
    # Issue ids need no issues row: deliveries carry no foreign key (app/models.py).
    async def queued(conn: asyncpg.Connection, round_: int) -> int:
        await queued_then_claimed(conn, 10 * round_ + 1, rows)
        return rows

    async def claimed(conn: asyncpg.Connection, round_: int) -> int:
        await written_claimed(conn, 10 * round_ + 2, rows)
        return rows

    await backend_cost_rounds({"queued, then claimed": queued, "written claimed": claimed})


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 40_000))
