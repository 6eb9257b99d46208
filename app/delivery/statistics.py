"""Fresh planner statistics on `deliveries` after a large send fans out (PostgreSQL).

Why: a send writes one delivery row per recipient in one INSERT … SELECT, and until
autovacuum comes round (a minute or more) the planner still sees the table as it was,
often empty. Planned for an empty table, the claim statement walked every queued row of
the issue per batch, and a send right after an import ran at a third of its speed, three
backends busy for one worker (issue 15). So when an issue starts sending with at least
ANALYZE_ROWS recipients that are also at least a tenth of what the planner believes the
table holds (a smaller send changes no plan), one dispatcher runs ANALYZE deliveries (a
sample of 30,000 rows: tenths of a second, whatever the table's size). ANALYZE
invalidates the cached plans of statements on the table, so the next claim of every
worker is planned on the new figures.

It runs in a task beside the control loop, never inside its tick: a pause or cancel must
not wait for it. With several workers, a transaction-level advisory lock lets one of
them do it and the others go on at once (two ANALYZEs of one table queue on its lock).
SQLite keeps no such statistics: nothing to do there.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger("tidings.dispatcher")

ANALYZE_ROWS = 10_000
_LOCK = 0x7469_6469_6E67_73  # "tidings": one advisory lock key for this, cluster-wide


async def after_fan_out(sessionmaker: async_sessionmaker[AsyncSession], issue_id: int) -> bool:
    """ANALYZE deliveries if this issue's fan-out left the statistics stale; True when it ran."""
    async with sessionmaker() as s, s.begin():
        if s.get_bind().dialect.name != "postgresql":
            return False
        row = (
            await s.execute(
                text(
                    "SELECT i.recipients, c.reltuples FROM issues i, pg_class c"
                    " WHERE i.id = :i AND c.oid = 'deliveries'::regclass"
                ),
                {"i": issue_id},
            )
        ).first()
        if row is None or not row.recipients:
            return False
        if row.recipients < ANALYZE_ROWS or row.recipients * 10 < row.reltuples:
            return False
        if not await s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}):
            return False  # another dispatcher is doing it now
        await s.execute(text("ANALYZE deliveries"))
    log.info("deliveries analysed after issue %s fanned out to %s", issue_id, row.recipients)
    return True
