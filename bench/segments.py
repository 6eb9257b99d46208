"""Segment counts over a million subscribers on PostgreSQL: median and p95 per typical rule.

    .venv/bin/python -m bench.segments [--subscribers 1000000] [--repeat 15]

A fresh database (`tidings_bench_<random>`, dropped afterwards) is migrated and seeded
set-based with generate_series: varied attributes (plan, age, city, tags), two lists
with about 60% and 30% confirmed members, and bounces for about 2% of the people spread
over 90 days. Each rule is counted through the service the API calls (`count_rule`),
after one warm-up, and its PostgreSQL plan is printed so the indexes serving it show.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable

from app.db import make_engine, make_sessionmaker
from app.models import Subscriber
from app.segments import service
from bench.infra import _asyncpg_dsn, create_pg_database, drop_pg_database, pg_available
from bench.seed import migrate

RULES: dict[str, dict[str, Any]] = {
    "attribute eq": {"attribute": "plan", "op": "eq", "value": "pro"},
    "attribute gt (number)": {"attribute": "age", "op": "gt", "value": 60},
    "list membership": {"list": "weekly", "status": "confirmed"},
    "bounced within 30 days": {"bounced": "any", "within_days": 30},
    "combination": {
        "all": [
            {"list": "weekly", "status": "confirmed"},
            {
                "any": [
                    {"attribute": "plan", "op": "eq", "value": "pro"},
                    {"attribute": "tags", "op": "contains", "value": "ai"},
                ]
            },  # fmt: skip
            {"not": {"bounced": "hard", "within_days": 30}},
            {"not": {"list": "offers", "status": "unsubscribed"}},
        ]
    },
}

_SUBSCRIBERS = """
INSERT INTO subscribers (id, email, email_key, name, attributes, status, created_at, updated_at)
SELECT i, 'reader' || i || '@example.com', 'reader' || i || '@example.com', 'Reader ' || i,
       json_build_object(
         'plan', (ARRAY['free', 'pro', 'team'])[1 + i % 3],
         'age', 18 + (i * 7919) % 70,
         'city', (ARRAY['Paris', 'Berlin', 'Lyon', 'Bern'])[1 + i % 4],
         'tags', CASE WHEN i % 5 = 0 THEN json_build_array('ai', 'go')
                      ELSE json_build_array('go') END),
       CASE WHEN i % 97 = 0 THEN 'blocklisted' ELSE 'active' END,
       now() - (i % 1000) * interval '1 day', now()
FROM generate_series($1::bigint, $2::bigint) AS i
"""
_MEMBERS = """
INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, confirmed_at)
SELECT i, $3, CASE WHEN i % 10 < $4 THEN 'confirmed' WHEN i % 10 = 9 THEN 'unsubscribed'
                   ELSE 'pending' END, now(), now()
FROM generate_series($1::bigint, $2::bigint) AS i WHERE i % 10 < $4 OR i % 10 >= 8
"""
_BOUNCES = """
INSERT INTO bounces (event_key, email, subscriber_id, type, source, counts, created_at)
SELECT 'b' || i, 'reader' || i || '@example.com', i,
       CASE WHEN i % 3 = 0 THEN 'hard' ELSE 'soft' END, 'api', true,
       now() - (i % 90) * interval '1 day'
FROM generate_series($1::bigint, $2::bigint) AS i WHERE i % 50 = 0
"""


class Explain(Executable, ClauseElement):
    """EXPLAIN of a statement, with its values bound as the service binds them."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return "EXPLAIN " + str(compiler.process(element.statement, **kw))


async def seed(url: str, subscribers: int) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        lists = {}
        for slug, confirmed in (("weekly", 6), ("offers", 3)):
            lists[slug] = (await conn.fetchval(
                "INSERT INTO lists (slug, name, description, double_opt_in, public, created_at)"
                " VALUES ($1, $1, '', false, true, now()) RETURNING id", slug,
            ), confirmed)  # fmt: skip
        for lo in range(1, subscribers + 1, 250_000):
            hi = min(subscribers, lo + 249_999)
            await conn.execute(_SUBSCRIBERS, lo, hi)
            for list_id, confirmed in lists.values():
                await conn.execute(_MEMBERS, lo, hi, list_id, confirmed)
            await conn.execute(_BOUNCES, lo, hi)
        # As autovacuum leaves a settled database: statistics, and the visibility map
        # that lets index-only scans skip the heap.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def _indexes(plan: str) -> str:
    found = sorted(
        set(re.findall(r"(?:Index|Index Only|Bitmap Index) Scan (?:using|on) (\w+)", plan))
    )
    scans = sorted(set(re.findall(r"Seq Scan on (\w+)", plan)))
    return ", ".join([*found, *(f"seq scan {t}" for t in scans)]) or "-"


async def measure(url: str, repeat: int) -> list[tuple[str, float, float, int, str]]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    rows = []
    try:
        for label, rule in RULES.items():
            async with sessions() as session:
                count = await service.count_rule(session=session, rule=rule)  # warm-up
                times = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    await service.count_rule(session=session, rule=rule)
                    times.append(time.perf_counter() - start)
                clause = await service.clause_for(session, rule)
                stmt = select(func.count()).select_from(Subscriber).where(clause)
                plan = "\n".join(r[0] for r in await session.execute(Explain(stmt)))
            times.sort()
            p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
            rows.append((label, statistics.median(times), p95, count, _indexes(plan)))
            print(f"-- {label}\n{plan}\n", flush=True)
    finally:
        await engine.dispose()
    return rows


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.segments", description=__doc__)
    p.add_argument("--subscribers", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=15)
    args = p.parse_args(argv)
    missing = await pg_available()
    if missing:
        raise SystemExit(f"skipped: {missing}")
    url = await create_pg_database()
    try:
        await migrate(url)
        start = time.perf_counter()
        await seed(url, args.subscribers)
        print(f"seeded {args.subscribers:,} subscribers in {time.perf_counter() - start:.0f} s")
        rows = await measure(url, args.repeat)
    finally:
        await drop_pg_database(url)
    print(f"\n{'rule':<26} {'median ms':>10} {'p95 ms':>8} {'count':>9}  indexes / scans")
    for label, median, p95, count, used in rows:
        print(f"{label:<26} {median * 1000:>10.0f} {p95 * 1000:>8.0f} {count:>9,}  {used}")


if __name__ == "__main__":
    asyncio.run(main())
