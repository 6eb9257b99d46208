"""ANALYZE deliveries after a large fan-out on PostgreSQL, so claims are planned on real figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, text

from app.db import make_engine, make_sessionmaker
from app.delivery import queue, statistics
from tests.delivery.helpers import new_issue, seed, send

# The claim's inner select as queue.claim sends it (bench/user_path.py explains the same).
CLAIM = (
    "EXPLAIN SELECT id FROM deliveries WHERE issue_id = :i AND status = 'queued'"
    " AND next_attempt_at <= now() LIMIT 200 FOR UPDATE SKIP LOCKED"
)


async def _planner_rows(maker: Any) -> float:
    async with maker() as s:
        query = "SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass"
        return float(await s.scalar(text(query)))


async def _plan(maker: Any, issue_id: int) -> str:
    async with maker() as s, s.begin():
        return "\n".join(r[0] for r in await s.execute(text(CLAIM), {"i": issue_id}))


async def _claim_plan(engine: Any, maker: Any, issue_id: int) -> str:
    """EXPLAIN of the very statement queue.claim sends (caught on its way, then rolled back)."""
    sent: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.startswith("UPDATE deliveries SET status = 'sending'"):
            sent.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", catch)
    try:
        async with maker() as s:
            await queue.claim(session=s, issue_id=issue_id, owner="x", limit=200, lease_seconds=9)
            await s.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", catch)
    [(statement, params)] = sent
    async with engine.connect() as conn:
        rows = await conn.exec_driver_sql("EXPLAIN " + statement, params)
        return "\n".join(r[0] for r in rows)


@pytest.mark.postgres_only
async def test_a_large_fan_out_is_analysed_once_and_a_small_one_not(
    app_factory: Callable[..., Any], db: str
) -> None:
    client = await app_factory()
    await seed(db, 20_000)
    await seed(db, 5, slug="few", prefix="f")
    engine = make_engine(db)
    maker = make_sessionmaker(engine)
    try:
        small = await new_issue(client, slug="few")
        await send(client, small)
        assert await statistics.after_fan_out(maker, small) is False  # 5 recipients
        large = await new_issue(client)
        await send(client, large)
        before = await _plan(maker, large)
        claim_before = await _claim_plan(engine, maker, large)
        assert await statistics.after_fan_out(maker, large) is True
        assert await _planner_rows(maker) >= 15_000  # 20,005 rows, sampled
        after = await _plan(maker, large)
        claim_after = await _claim_plan(engine, maker, large)
        print(f"\nclaim's select after the fan-out:\n{before}\nafter ANALYZE:\n{after}")
        print(f"\nqueue.claim after the fan-out:\n{claim_before}\nafter ANALYZE:\n{claim_after}")
        # Whatever the statistics, the claim walks the queue index and looks rows up by
        # key: never a scan of the whole table per batch.
        for plan in (claim_before, claim_after):
            assert "ix_deliveries_queue" in plan and "Seq Scan" not in plan, plan
        # A second look (another worker, a resume) finds the statistics fresh.
        assert await statistics.after_fan_out(maker, large) is False
    finally:
        await engine.dispose()


async def test_a_small_fan_out_analyses_nothing(app_factory: Callable[..., Any], db: str) -> None:
    """Below the threshold (and always on SQLite) the send leaves the statistics alone."""
    client = await app_factory()
    await seed(db, 3)
    issue = await new_issue(client)
    await send(client, issue)
    engine = make_engine(db)
    try:
        assert await statistics.after_fan_out(make_sessionmaker(engine), issue) is False
    finally:
        await engine.dispose()
