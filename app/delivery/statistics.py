"""Planner statistics on `deliveries` that keep up with the table as a send writes it (PostgreSQL).

Why: a send writes one delivery row per recipient, all at once in the send call (a small
send) or claim by claim (a batched one, fanout.py), and until autovacuum comes round (a
minute or more) the planner still sees the table as it was, often empty. Worse than
stale figures for one statement: each backend keeps the generic plans of the prepared
statements it runs again and again (the re-check before each chunk, the progress
counts), made on the table as it was when they were first run, until an ANALYZE of the
table invalidates them. Seen in a batched send of 100,000 to a new database: the
re-check kept a sequential scan chosen when the table held a few hundred rows, 25 ms a
chunk of 50 at 36,000 rows, and PostgreSQL's CPU a message went from 84 to 212 us.
The claim itself is written so that no statistics can turn its plan (claim_statement).

The rule: when the table's file has grown by at least ANALYZE_PAGES (about 10,000
deliveries) and to at least twice the pages the planner was last told of (pg_class's
relpages, set by the last ANALYZE or VACUUM), one dispatcher runs ANALYZE deliveries: a
sample of 30,000 rows, tenths of a second whatever the table's size. So plans are remade
each time the table has doubled (a few times in a large send to a new database, at most
once in a send smaller than what the table already holds), and a small send changes
nothing. The file's size is read at once; pg_stat's counts of changed rows reach other
backends only when the writer is idle, up to 10 s later. It is looked at when an issue
starts sending and every 2 s while one is.

It runs in a task beside the control loop, never inside its tick: a pause or cancel must
not wait for it. With several workers, a transaction-level advisory lock lets one of
them do it and the others go on at once (two ANALYZEs of one table queue on its lock).
SQLite keeps no such statistics and no generic plans: nothing to do there.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import on_postgresql

log = logging.getLogger("tidings.dispatcher")

ANALYZE_PAGES = 128  # 8 KB pages, 1 MB: about 10,000 deliveries
_LOCK = 0x7469_6469_6E67_73  # "tidings": one advisory lock key for this, cluster-wide
_PAGES = text(
    "SELECT c.relpages AS believed, pg_relation_size(c.oid)"
    " / current_setting('block_size')::int AS pages"
    " FROM pg_class c WHERE c.oid = 'deliveries'::regclass"
)


async def keep_up(sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
    """ANALYZE deliveries if it has grown to twice what the planner knows of; True if it ran."""
    async with sessionmaker() as s, s.begin():
        if not on_postgresql(s):
            return False
        row = (await s.execute(_PAGES)).first()
        if row is None or row.pages < max(row.believed + ANALYZE_PAGES, 2 * row.believed):
            return False
        if not await s.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK}):
            return False  # another dispatcher is doing it now
        await s.execute(text("ANALYZE deliveries"))
    log.info("deliveries analysed: %d pages, the planner knew of %d", row.pages, row.believed)
    return True
