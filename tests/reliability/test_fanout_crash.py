"""A batched fan-out (app/delivery/fanout.py) survives a worker dying while it writes a batch.

The batch's rows and the cursor's move are one transaction: a worker killed in the middle
leaves neither, and the next claim writes that range again. Nobody is lost, nobody doubled.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app.db import make_engine, make_sessionmaker
from app.delivery import queue
from app.delivery.fanout import issue_fanouts
from tests.delivery.helpers import fan_out_in_batches, rows_and_people
from tests.reliability.harness import (
    WorkerProcess,
    all_received,
    api,
    create_issue,
    delivery_counts,
    received_counts,
    seed,
    start_send,
    wait_for,
    worker_env,
)
from tests.smtp import SMTPServer

WIDTH = 20
# What one worker can have sent but not yet recorded when it dies (test_worker_crash.py).
IN_FLIGHT = 10 + 50


@pytest.fixture
def smtp() -> SMTPServer:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def batched(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API process fans every send of more than 10 recipients out in batches."""
    fan_out_in_batches(monkeypatch, WIDTH)


async def written(url: str, issue_id: int) -> tuple[int, int, int]:
    """(deliveries, distinct subscribers, cursor) of the issue."""
    n, distinct = await rows_and_people(url, issue_id)
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            cursor = await conn.scalar(
                select(issue_fanouts.c.next_subscriber_id).where(
                    issue_fanouts.c.issue_id == issue_id
                )
            )
    finally:
        await engine.dispose()
    return n, distinct, int(cursor)


@pytest.mark.usefixtures("batched")
async def test_a_connection_killed_mid_batch_leaves_no_row_and_no_move(
    private_db: str, smtp: SMTPServer, tmp_path: Path
) -> None:
    """The backend of a claim that has written a batch, not committed, is terminated."""
    await seed(private_db, 100)
    async with api(private_db, smtp.url, tmp_path / "var") as client:
        issue_id = await create_issue(client)
        await start_send(client, issue_id)
    before = await written(private_db, issue_id)
    assert before[:2] == (0, 0)
    engine = make_engine(private_db)
    try:
        async with make_sessionmaker(engine)() as victim:
            await victim.begin()
            pid = await victim.scalar(text("SELECT pg_backend_pid()"))
            ids = await queue.claim(
                session=victim, issue_id=issue_id, owner="victim", limit=50, lease_seconds=60
            )
            assert len(ids) == WIDTH
            async with engine.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises)
                await victim.commit()
        assert await written(private_db, issue_id) == before
        async with make_sessionmaker(engine)() as s, s.begin():
            again = await queue.claim(
                session=s, issue_id=issue_id, owner="next", limit=50, lease_seconds=60
            )
        assert len(again) == WIDTH
        assert await written(private_db, issue_id) == (WIDTH, WIDTH, before[2] + WIDTH)
    finally:
        await engine.dispose()


@pytest.mark.slow
@pytest.mark.usefixtures("batched")
async def test_sigkill_during_a_batched_fan_out(
    private_db: str, smtp: SMTPServer, tmp_path: Path
) -> None:
    """Workers killed at random while batches are written: everyone once in the log."""
    recipients = 600
    emails = await seed(private_db, recipients)
    # Small batches, so that a batch is written every few claims; a rate limit stretches
    # the send over several seconds so that the kills land mid-send.
    env = worker_env(private_db, smtp.url + "?rate=120", tmp_path / "var", fanout_batch=WIDTH)
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log") for i in range(2)]
    rng = random.Random(15)
    kills = 0
    try:
        async with api(private_db, smtp.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            for w in workers:
                w.start()
            sent = await start_send(client, issue_id)
            assert sent["recipients"] == recipients
            deadline = time.monotonic() + 60
            for _ in range(5):
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                if await all_received(smtp, emails)() or time.monotonic() > deadline:
                    break
                victim = rng.choice(workers)
                victim.kill()
                kills += 1
                victim.start()
            delivered = await wait_for(all_received(smtp, emails), timeout=120)

            async def finished() -> bool:
                r = await client.get(f"/api/v1/issues/{issue_id}")
                return bool(r.json()["status"] == "sent")

            assert await wait_for(finished, timeout=60), await delivery_counts(private_db, issue_id)
            stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
    finally:
        for w in workers:
            w.stop()
    got = received_counts(smtp)
    missing = [e for e in emails if not got[e]]
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    assert kills >= 3, "the send ended before the workers could be killed enough"
    assert delivered and not missing, (missing[:10], workers[0].tail())
    n, distinct, _ = await written(private_db, issue_id)
    assert n == distinct == recipients  # every recipient one row: none lost, none doubled
    assert duplicates <= kills * IN_FLIGHT
    assert stats["sent"] == recipients and stats["status"] == "sent", stats
