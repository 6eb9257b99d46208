"""A large send's deliveries written as they are claimed, already claimed (app/delivery/fanout.py).

The inline limit is set low so that a few hundred recipients take the batched path: the
send call writes no delivery, the dispatchers write them claim by claim, WIDTH ids at most.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from app.db import make_engine, make_sessionmaker, utcnow
from app.delivery import queue
from app.delivery.dispatcher import Dispatcher
from app.delivery.fanout import issue_fanouts
from app.delivery.transport import build_transports
from app.issues import lifecycle
from app.models import Delivery, Subscriber, Subscription
from tests.conftest import AppClient
from tests.delivery.helpers import (
    fan_out_in_batches,
    new_issue,
    received,
    seed,
    send,
    status_of,
    wait_for,
)
from tests.delivery.helpers import rows_and_people as rows
from tests.smtp import SMTPServer

WIDTH = 25  # subscriber ids per batch


@pytest.fixture
def batched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every send of more than 10 recipients is fanned out in batches of WIDTH ids."""
    fan_out_in_batches(monkeypatch, WIDTH)


async def fanout_row(db: str, issue_id: int) -> Any:
    engine = make_engine(db)
    try:
        async with engine.connect() as conn:
            return (
                await conn.execute(
                    select(issue_fanouts).where(issue_fanouts.c.issue_id == issue_id)
                )
            ).first()
    finally:
        await engine.dispose()


async def run_dispatchers(
    client: AppClient, db: str, smtpd: SMTPServer, issue_id: int, n: int
) -> None:
    """Run `n` dispatchers, each on its own engine, until the issue is sent."""
    settings = client.app.state.settings.model_copy(update={"batch_size": 20})
    engines = [make_engine(db) for _ in range(n)]
    dispatchers = [
        Dispatcher(settings=settings, sessionmaker=make_sessionmaker(e),
                   transports=build_transports(smtpd.url, settings.var_dir))
        for e in engines
    ]  # fmt: skip
    tasks = [asyncio.create_task(d.run()) for d in dispatchers]
    try:

        async def sent() -> bool:
            return await status_of(client, issue_id) == "sent"

        await wait_for(sent, 120, "the batched send to finish")
    finally:
        for d in dispatchers:
            d.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=40)
        for e in engines:
            await e.dispose()


@pytest.mark.usefixtures("batched")
async def test_two_dispatchers_deliver_a_batched_send_exactly_once(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory()
    emails = await seed(db, 200)
    issue_id = await new_issue(client)
    answer = await send(client, issue_id)
    assert answer["recipients"] == 200
    assert await rows(db, issue_id) == (0, 0)  # fixed by the snapshot, none written yet
    assert (await fanout_row(db, issue_id)).done is False
    await run_dispatchers(client, db, smtpd, issue_id, 2)
    assert received(smtpd) == Counter(emails)  # each once
    assert await rows(db, issue_id) == (200, 200)
    assert (await fanout_row(db, issue_id)).done is True
    stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
    assert stats["recipients"] == 200 and stats["sent"] == 200, stats


@pytest.mark.usefixtures("batched")
async def test_the_recipients_are_those_confirmed_at_the_send_call(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    """Confirmed after the send call: not a recipient. Confirmed without a date: one."""
    client = await app_factory()
    emails = await seed(db, 40)
    engine = make_engine(db)
    async with engine.begin() as conn:
        list_id = await conn.scalar(text("SELECT id FROM lists WHERE slug = 'news'"))
        pending, undated = (
            await conn.execute(
                insert(Subscriber).returning(Subscriber.id),
                [
                    {"email": e, "email_key": e, "name": "X", "attributes": {}}
                    for e in ("pending@example.org", "undated@example.org")
                ],
            )
        ).scalars()
        await conn.execute(
            insert(Subscription),
            [
                {"subscriber_id": pending, "list_id": list_id, "status": "pending"},
                # An old row confirmed without confirmed_at counts from when it was made.
                {"subscriber_id": undated, "list_id": list_id, "status": "confirmed",
                 "created_at": utcnow() - timedelta(days=1), "confirmed_at": None},
            ],
        )  # fmt: skip
    issue_id = await new_issue(client)
    assert (await send(client, issue_id))["recipients"] == 41
    later = "later@example.org"
    r = await client.post("/api/v1/subscribers", json={"email": later, "lists": ["news"]})
    assert r.status_code == 201, r.text
    async with engine.begin() as conn:  # the pending member confirms after the send call
        await conn.execute(
            Subscription.__table__.update()
            .where(Subscription.subscriber_id == pending)
            .values(status="confirmed", confirmed_at=utcnow())
        )
    await engine.dispose()
    await run_dispatchers(client, db, smtpd, issue_id, 1)
    assert received(smtpd) == Counter([*emails, "undated@example.org"])
    assert await rows(db, issue_id) == (41, 41)


async def claim_all(db: str, issue_id: int, owner: str = "t") -> list[int]:
    """One claim in its own transaction, as the feeder makes it."""
    engine = make_engine(db)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            return await queue.claim(
                session=s, issue_id=issue_id, owner=owner, limit=1000, lease_seconds=60
            )
    finally:
        await engine.dispose()


async def mark_sent(db: str, owner: str, ids: list[int]) -> None:
    engine = make_engine(db)
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            now = utcnow()
            results = [queue.Result(i, "sent", sent_at=now) for i in ids]
            assert await queue.record(session=s, owner=owner, results=results) == len(ids)
            await lifecycle.finish_sending(session=s)
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("batched")
async def test_pause_stops_the_fan_out_and_resume_goes_on_from_the_cursor(
    client: AppClient, db: str
) -> None:
    await seed(db, 100)
    issue_id = await new_issue(client)
    await send(client, issue_id)
    stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
    assert (stats["recipients"], stats["queued"]) == (100, 100)  # owed, though not written
    first = await claim_all(db, issue_id)
    assert len(first) == WIDTH  # one batch written and claimed
    await mark_sent(db, "t", first)
    # Every written delivery is sent, but the rest are not written: not finished.
    assert await status_of(client, issue_id) == "sending"
    stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
    assert (stats["sent"], stats["queued"]) == (WIDTH, 100 - WIDTH), stats
    assert (await client.post(f"/api/v1/issues/{issue_id}/pause")).status_code == 200
    assert await claim_all(db, issue_id) == []
    assert await rows(db, issue_id) == (WIDTH, WIDTH)  # paused: no batch written
    assert (await client.post(f"/api/v1/issues/{issue_id}/resume")).status_code == 200
    taken = list(first)
    for _ in range(10):
        ids = await claim_all(db, issue_id)
        if not ids:
            break
        await mark_sent(db, "t", ids)
        taken += ids
    assert len(taken) == len(set(taken)) == 100
    assert await rows(db, issue_id) == (100, 100)
    assert await status_of(client, issue_id) == "sent"


@pytest.mark.usefixtures("batched")
async def test_cancel_mid_fan_out_drops_what_is_not_written(client: AppClient, db: str) -> None:
    await seed(db, 100)
    issue_id = await new_issue(client)
    await send(client, issue_id)
    first = await claim_all(db, issue_id)
    assert len(first) == WIDTH
    assert (await client.post(f"/api/v1/issues/{issue_id}/cancel")).status_code == 200
    assert await claim_all(db, issue_id) == []
    assert (await fanout_row(db, issue_id)).done is True
    assert await rows(db, issue_id) == (WIDTH, WIDTH)
    await mark_sent(db, "t", first)  # the claims in flight finish and are logged
    stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
    assert stats["status"] == "cancelled" and stats["sent"] == WIDTH, stats


@pytest.mark.postgres_only
@pytest.mark.usefixtures("batched")
async def test_a_second_worker_waits_for_a_take_and_takes_the_next(
    client: AppClient, db: str
) -> None:
    """While one transaction takes from the snapshot, another claim waits on the cursor's row
    (it does not come back empty), then takes the members after what the first took."""
    await seed(db, 100)
    issue_id = await new_issue(client)
    await send(client, issue_id)
    engine = make_engine(db)
    try:
        async with make_sessionmaker(engine)() as a:
            await a.begin()
            mine = await queue.claim(
                session=a, issue_id=issue_id, owner="a", limit=1000, lease_seconds=60
            )
            assert len(mine) == WIDTH
            other = asyncio.create_task(claim_all(db, issue_id, "b"))
            await asyncio.sleep(0.5)
            assert not other.done()  # the fan-out row is locked until `a` commits
            await a.commit()
        second = await asyncio.wait_for(other, timeout=10)
        assert len(second) == WIDTH and not set(second) & set(mine)
    finally:
        await engine.dispose()


@pytest.mark.usefixtures("batched")
async def test_a_segment_keeps_its_rules_of_the_send_call(client: AppClient, db: str) -> None:
    """Batches apply the segment as it was at the send call, even if it is edited later."""
    await seed(db, 60)
    engine = make_engine(db)
    async with engine.begin() as conn:
        ids = (await conn.execute(select(Subscriber.id).order_by(Subscriber.id))).scalars().all()
        pro = ids[::2]
        await conn.execute(
            Subscriber.__table__.update()
            .where(Subscriber.id.in_(pro))
            .values(attributes={"plan": "pro"})
        )
    await engine.dispose()
    rule = {"attribute": "plan", "op": "eq", "value": "pro"}
    seg = (await client.post("/api/v1/segments", json={"name": "Pro", "rules": rule})).json()
    issue_id = await new_issue(client, segment=seg["id"])
    assert (await send(client, issue_id))["recipients"] == 30
    edited = {"attribute": "plan", "op": "eq", "value": "nobody"}
    r = await client.patch(f"/api/v1/segments/{seg['id']}", json={"rules": edited})
    assert r.status_code == 200, r.text
    taken: list[int] = []
    for _ in range(10):
        claimed = await claim_all(db, issue_id)
        if not claimed:
            break
        await mark_sent(db, "t", claimed)
        taken += claimed
    assert len(taken) == 30 and await rows(db, issue_id) == (30, 30)
    engine = make_engine(db)
    async with engine.connect() as conn:
        got = (
            await conn.execute(select(Delivery.subscriber_id).where(Delivery.issue_id == issue_id))
        ).scalars()
        assert sorted(got) == sorted(pro)
    await engine.dispose()


@pytest.mark.usefixtures("batched")
async def test_a_take_writes_its_rows_claimed_and_a_lost_lease_sends_them_again(
    client: AppClient, db: str
) -> None:
    """A batched send's rows are born `sending` under the claimer's lease: no `queued` row
    for them ever exists. Its dispatcher dies (the lease runs out): they go back to the
    queue and the next claim takes them first, before any new member."""
    await seed(db, 60)
    issue_id = await new_issue(client)
    await send(client, issue_id)
    first = await claim_all(db, issue_id, "dead")
    assert len(first) == WIDTH
    engine = make_engine(db)
    try:
        async with engine.connect() as conn:
            held = (
                await conn.execute(
                    select(Delivery.status, Delivery.lease_owner, Delivery.attempts)
                    .where(Delivery.issue_id == issue_id)
                )
            ).all()  # fmt: skip
        assert held and set(held) == {("sending", "dead", 1)}, held
        async with make_sessionmaker(engine)() as s, s.begin():
            await s.execute(
                Delivery.__table__.update()
                .where(Delivery.issue_id == issue_id)
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
            assert await queue.recover_expired(session=s) == WIDTH
    finally:
        await engine.dispose()
    again = await claim_all(db, issue_id, "next")
    assert sorted(again[:WIDTH]) == sorted(first)  # the recovered ones first
    taken = list(again)
    for _ in range(10):
        await mark_sent(db, "next", again)
        again = await claim_all(db, issue_id, "next")
        if not again:
            break
        taken += again
    assert len(set(taken)) == 60 and await rows(db, issue_id) == (60, 60)
    assert await status_of(client, issue_id) == "sent"


@pytest.mark.usefixtures("batched")
async def test_a_send_to_two_lists_takes_each_member_once(client: AppClient, db: str) -> None:
    """Members of two lists, most in both: each take looks in a narrow range of ids (twice
    the last take's) and picks each member once, however many of the lists they are on."""
    await seed(db, 120)
    r = await client.post("/api/v1/lists", json={"name": "Second", "slug": "second"})
    assert r.status_code == 201, r.text
    engine = make_engine(db)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at,"
                " confirmed_at) SELECT subscriber_id, (SELECT id FROM lists WHERE slug ="
                " 'second'), status, created_at, confirmed_at FROM subscriptions"
                " WHERE subscriber_id % 3 <> 0"
            ))  # fmt: skip
        issue_id = await new_issue(client, lists=["news", "second"])
        assert (await send(client, issue_id))["recipients"] == 120
        taken: list[int] = []
        for _ in range(30):
            async with make_sessionmaker(engine)() as s, s.begin():
                got = await queue.claim(session=s, issue_id=issue_id, owner="t", limit=7,
                                        lease_seconds=60)  # fmt: skip
            if not got:
                break
            assert len(got) <= 7
            await mark_sent(db, "t", got)
            taken += got
    finally:
        await engine.dispose()
    assert len(taken) == len(set(taken)) == 120
    assert await rows(db, issue_id) == (120, 120)
    assert await status_of(client, issue_id) == "sent"
