"""ANALYZE deliveries as a send writes it (PostgreSQL): statements planned on real figures."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import event, text

from app.db import make_engine, make_sessionmaker
from app.delivery import queue, statistics
from tests.delivery.helpers import fan_out_in_batches, new_issue, seed, send, status_of, wait_for
from tests.smtp import SMTPServer

# The claim's inner select as queue.claim sends it (bench/user_path.py explains the same).
CLAIM = (
    "EXPLAIN SELECT id FROM deliveries WHERE issue_id = :i AND status = 'queued'"
    " AND next_attempt_at <= now() LIMIT 200 FOR UPDATE SKIP LOCKED"
)


@pytest.fixture
def batched(monkeypatch: pytest.MonkeyPatch) -> None:
    fan_out_in_batches(monkeypatch, 20_000)


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


async def _fresh(engine: Any) -> None:
    """Statistics taken now: the changes earlier tests made to this database count no more."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE deliveries"))


async def _analysed_soon(maker: Any) -> bool:
    """keep_up, looked at for at most 2 s (the control loop looks every 2 s)."""
    for _ in range(20):
        if await statistics.keep_up(maker):
            return True
        await asyncio.sleep(0.1)
    return False


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
        await _fresh(engine)
        small = await new_issue(client, slug="few")
        await send(client, small)
        assert await statistics.keep_up(maker) is False  # 5 recipients
        large = await new_issue(client)
        await send(client, large)
        before = await _plan(maker, large)
        claim_before = await _claim_plan(engine, maker, large)
        assert await _analysed_soon(maker) is True
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
        assert await statistics.keep_up(maker) is False
    finally:
        await engine.dispose()


async def test_a_small_fan_out_analyses_nothing(app_factory: Callable[..., Any], db: str) -> None:
    """Below the threshold (and always on SQLite) the send leaves the statistics alone."""
    engine = make_engine(db)
    try:
        await _fresh(engine)
        client = await app_factory()
        await seed(db, 3)
        issue = await new_issue(client)
        await send(client, issue)
        assert await statistics.keep_up(make_sessionmaker(engine)) is False
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
@pytest.mark.usefixtures("batched")
async def test_a_batched_send_is_analysed_as_its_rows_are_written(
    app_factory: Callable[..., Any], db: str
) -> None:
    """The send call writes nothing; the claims write the rows. Once they have doubled the
    table the planner knew of, it is analysed: the re-check's and the counts' plans are
    then remade on what the table is, not on the empty table."""
    client = await app_factory()
    await seed(db, 16_000)
    engine = make_engine(db)
    maker = make_sessionmaker(engine)
    try:
        await _fresh(engine)
        issue = await new_issue(client)
        await send(client, issue)
        assert await statistics.keep_up(maker) is False  # nothing written yet
        for _ in range(4):
            async with maker() as s, s.begin():
                got = await queue.claim(session=s, issue_id=issue, owner="x", limit=4_000,
                                        lease_seconds=60, fanout_batch=20_000)  # fmt: skip
                assert len(got) == 4_000
        assert await _analysed_soon(maker) is True
        assert await _planner_rows(maker) >= 10_000
        assert await statistics.keep_up(maker) is False  # fresh until it grows again
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
@pytest.mark.usefixtures("batched")
async def test_a_dispatcher_analyses_as_a_batched_send_grows_the_table(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control loop's look every 2 s while an issue is sending: a send that writes its
    rows as it claims (none at its start) gets the table analysed while it goes."""
    monkeypatch.setattr(statistics, "ANALYZE_PAGES", 1)  # a page's growth is enough here
    engine = make_engine(db)
    await _fresh(engine)
    count = text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'deliveries'")
    try:
        async with engine.connect() as conn:
            before = await conn.scalar(count)
        client = await app_factory(embedded_worker=True, smtp_url=f"{smtpd.url}?rate=40")
        await seed(db, 150)  # about 4 s at 40 a second: two looks or more
        issue = await new_issue(client)
        await send(client, issue)

        async def sent() -> bool:
            return await status_of(client, issue) == "sent"

        await wait_for(sent, 60, "the batched send to finish")
        assert len(smtpd.received) == 150
        async with engine.connect() as conn:
            assert await conn.scalar(count) > before
    finally:
        await engine.dispose()
