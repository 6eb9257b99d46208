"""Fresh planner statistics on `deliveries` after a large send fans out (PostgreSQL).

Why: a send writes one delivery row per recipient in one INSERT … SELECT, and until
autovacuum comes round (a minute or more) the planner still sees the table as it was,
often empty, for every statement that reads it (progress, reports, the guardrail, the
finish check). The claim itself is written so that no statistics can turn its plan
(queue.claim: measured at 20,000 rows, the old form went from 2.0 to 8.6 ms a batch
once the table was analysed, the new one stays at 1.4-2.1 ms either way). So when an
issue starts sending with at least ANALYZE_ROWS recipients that are also at least a
tenth of what the planner believes the table holds (a smaller send changes no plan),
and the table was last analysed before it started, one dispatcher runs ANALYZE
deliveries: a sample of 30,000 rows, tenths of a second whatever the table's size.

It runs in a task beside the control loop, never inside its tick: a pause or cancel must
not wait for it. With several workers, a transaction-level advisory lock lets one of
them do it and the others go on at once (two ANALYZEs of one table queue on its lock).
SQLite keeps no such statistics: nothing to do there.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import on_postgresql

log = logging.getLogger("tidings.dispatcher")

ANALYZE_ROWS = 10_000
_LOCK = 0x7469_6469_6E67_73  # "tidings": one advisory lock key for this, cluster-wide


async def after_fan_out(sessionmaker: async_sessionmaker[AsyncSession], issue_id: int) -> bool:
    """ANALYZE deliveries if this issue's fan-out left the statistics stale; True when it ran."""
    async with sessionmaker() as s, s.begin():
        if not on_postgresql(s):
            return False
        # Stale: the table was last analysed (by us or autovacuum) before this issue
        # started, so its fan-out is not in the figures. A resume, or a second worker
        # seeing the same start, finds them fresh and does nothing.
        row = (
            await s.execute(
                text(
                    "SELECT i.recipients, c.reltuples,"
                    " COALESCE(GREATEST(t.last_analyze, t.last_autoanalyze), '-infinity')"
                    " < i.started_at AS stale"
                    " FROM issues i, pg_class c JOIN pg_stat_user_tables t ON t.relid = c.oid"
                    " WHERE i.id = :i AND c.oid = 'deliveries'::regclass"
                ),
                {"i": issue_id},
            )
        ).first()
        if row is None or not row.stale or not row.recipients:
            return False
        if row.recipients < ANALYZE_ROWS or row.recipients * 10 < row.reltuples:
            return False
        if not await s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}):
            return False  # another dispatcher is doing it now
        await s.execute(text("ANALYZE deliveries"))
    log.info("deliveries analysed after issue %s fanned out to %s", issue_id, row.recipients)
    return True
