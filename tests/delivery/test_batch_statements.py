"""The per-chunk statements, queue.load_targets and queue.record, on both databases and on
both kinds of session: a transaction, and the autocommit one whose PostgreSQL statements
go to asyncpg itself (statements.driver_fetch). Each writes and reads the same values."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db import make_engine, make_sessionmaker, utcnow
from app.delivery import queue
from app.delivery.statements import driver_fetch, single_statements
from app.models import Delivery, Subscriber, Subscription
from tests.conftest import AppClient
from tests.delivery.helpers import new_issue, seed

OWNER = "worker-a"


async def _claimed(db: str, client: AppClient, n: int) -> tuple[int, list[int]]:
    """An issue with `n` deliveries, all claimed by OWNER; its id and theirs."""
    await seed(db, n)
    issue_id = await new_issue(client)
    engine = make_engine(db)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            people = (await s.scalars(select(Subscriber.id).order_by(Subscriber.id))).all()
            s.add_all(
                Delivery(issue_id=issue_id, subscriber_id=p, status="sending", attempts=1,
                         lease_owner=OWNER, next_attempt_at=utcnow())
                for p in people
            )  # fmt: skip
        async with make_sessionmaker(engine)() as s:
            ids = (await s.scalars(select(Delivery.id).order_by(Delivery.id))).all()
    finally:
        await engine.dispose()
    return issue_id, list(ids)


# Each statement on both kinds of session the dispatcher uses.
BOTH_SESSIONS = pytest.mark.parametrize(
    "autocommit", [False, True], ids=["transaction", "autocommit"]
)


def _sessions(db: str, autocommit: bool) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """An unpinged engine, as a worker's, and its sessions: transactional or autocommit."""
    engine = make_engine(db, pool_pre_ping=False)
    maker = make_sessionmaker(engine)
    return engine, single_statements(maker) if autocommit else maker


@BOTH_SESSIONS
async def test_results_are_written_as_given_and_only_under_our_lease(
    client: AppClient, db: str, autocommit: bool
) -> None:
    issue_id, ids = await _claimed(db, client, 6)
    engine, maker = _sessions(db, autocommit)
    now = utcnow().replace(microsecond=123456)
    later = now + timedelta(minutes=5)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():  # another worker holds the last
            await s.execute(update(Delivery).where(Delivery.id == ids[-1]).values(lease_owner="b"))
        results = [
            queue.Result(ids[0], "sent", message_id="<1.1.x@e>", server="smtp://a", sent_at=now),
            queue.Result(ids[1], "queued", refund=1, next_attempt_at=later, error="421 busy"),
            queue.Result(ids[2], "failed", error="550 no such user", server="smtp://a"),
            # A server's reply with a NUL and a byte that was not UTF-8: kept as text, not
            # refused by PostgreSQL (which would refuse the whole batch, every time).
            queue.Result(ids[3], "failed", error="554 bad\x00reply \udcff"),
            queue.Result(ids[5], "sent", sent_at=now),  # not ours any more
        ]
        async with maker() as s, s.begin():
            assert await queue.record(session=s, owner=OWNER, results=results) == 4
        async with make_sessionmaker(engine)() as s:
            rows = {d.id: d for d in await s.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
            # The retry's time compares as a time: it is due at `later`, not before.
            queued = select(Delivery.id).where(
                Delivery.issue_id == issue_id, Delivery.status == "queued"
            )
            due = await s.scalar(queued.where(Delivery.next_attempt_at <= later))
            early = await s.scalar(queued.where(Delivery.next_attempt_at < later))
    finally:
        await engine.dispose()
    sent, retry, failed, untouched = rows[ids[0]], rows[ids[1]], rows[ids[2]], rows[ids[5]]
    assert (sent.status, sent.message_id, sent.smtp_server, sent.sent_at) == (
        "sent", "<1.1.x@e>", "smtp://a", now)  # fmt: skip
    assert sent.lease_owner is None and sent.last_error is None and sent.attempts == 1
    assert (retry.status, retry.attempts, retry.next_attempt_at, retry.last_error) == (
        "queued", 0, later, "421 busy")  # fmt: skip
    assert (failed.status, failed.last_error, failed.sent_at) == (
        "failed",
        "550 no such user",
        None,
    )
    assert (untouched.status, untouched.lease_owner) == ("sending", "b")
    assert rows[ids[3]].last_error == "554 badreply ?"
    assert (due, early) == (ids[1], None)


@BOTH_SESSIONS
async def test_targets_say_who_may_still_be_sent_to(
    client: AppClient, db: str, autocommit: bool
) -> None:
    _, ids = await _claimed(db, client, 3)
    engine, maker = _sessions(db, autocommit)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            first, second = (await s.scalars(select(Subscriber).order_by(Subscriber.id))).all()[:2]
            first.attributes = {"city": "Lyon", "n": 3}
            await s.execute(update(Subscription).where(Subscription.subscriber_id == second.id)
                            .values(status="unsubscribed"))  # fmt: skip
        async with maker() as s:
            targets = {t.id: t for t in await queue.load_targets(session=s, ids=[*ids, 10**9])}
    finally:
        await engine.dispose()
    assert sorted(targets) == ids  # the unknown id is simply absent
    assert targets[ids[0]].attributes == {"city": "Lyon", "n": 3} and targets[ids[0]].eligible
    assert not targets[ids[1]].eligible and targets[ids[2]].eligible
    assert targets[ids[0]].email.endswith("@example.org") and targets[ids[0]].attempts == 1


@pytest.mark.postgres_only
async def test_a_dropped_connection_is_an_sqlalchemy_error_and_empties_the_pool(
    client: AppClient, db: str
) -> None:
    """The worker pings no connection: a dropped one must fail its statement as every
    caller expects (SQLAlchemyError) and, as SQLAlchemy does, take the pool's other
    connections of that time with it (a restarted server dropped them all), so the next
    chunk gets a new one rather than the next dead one."""
    _, ids = await _claimed(db, client, 2)
    engine = make_engine(db, pool_pre_ping=False, pool_size=3, max_overflow=0)
    single = single_statements(make_sessionmaker(engine))

    async def backend() -> int:
        async with single() as s:
            pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await asyncio.sleep(0.2)  # held together: three connections in the pool
            return int(pid)

    try:
        pids = set(await asyncio.gather(backend(), backend(), backend()))
        assert len(pids) == 3
        async with make_sessionmaker(make_engine(db))() as other:
            for pid in pids:
                await other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        with pytest.raises(SQLAlchemyError):
            async with single() as s:
                await queue.load_targets(session=s, ids=ids)
        async with single() as s:
            assert len(await queue.load_targets(session=s, ids=ids)) == 2
            assert (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one() not in pids
    finally:
        await engine.dispose()


@pytest.mark.postgres_only
async def test_a_cancelled_statement_leaves_its_connection_out_of_the_pool(
    client: AppClient, db: str
) -> None:
    engine = make_engine(db, pool_pre_ping=False, pool_size=1, max_overflow=0)
    single = single_statements(make_sessionmaker(engine))
    try:
        async with single() as s:
            pid = (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        with pytest.raises(TimeoutError):
            async with single() as s:
                await asyncio.wait_for(driver_fetch(s, "SELECT pg_sleep(5)"), 0.3)
        async with single() as s:
            assert (await s.execute(text("SELECT pg_backend_pid()"))).scalar_one() != pid
    finally:
        await engine.dispose()
