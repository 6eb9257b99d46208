"""Pause, resume, cancel, scheduling and just-in-time skips, under a rate limit."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from app.db import make_engine
from app.models import Subscriber, Subscription
from tests.delivery.helpers import counts, new_issue, received, seed, send, status_of, wait_for
from tests.smtp import Received, SMTPServer


async def settled(smtpd: SMTPServer, quiet: float = 1.5, limit: float = 20) -> int:
    """Wait until the server received nothing new for `quiet` seconds; return the count."""
    deadline = time.monotonic() + limit
    last = -1
    while time.monotonic() < deadline:
        now = len(smtpd.received)
        if now == last:
            return now
        last = now
        await asyncio.sleep(quiet)
    raise AssertionError("the server never went quiet")


async def test_pause_stops_and_resume_sends_the_rest_once(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True, smtp_url=f"{smtpd.url}?rate=20")
    emails = await seed(db, 60)
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_for(lambda: _at_least(smtpd, 10), 30, "the first messages")
    assert (await client.post(f"/api/v1/issues/{issue_id}/pause")).status_code == 200
    at_pause = len(smtpd.received)
    stopped = await settled(smtpd)
    # Only what was already in flight may land after the pause: well under a second's worth.
    assert stopped - at_pause <= 20
    assert stopped < 60
    c = await counts(db, issue_id)
    assert c.get("sending", 0) == 0 and c["queued"] == 60 - stopped  # released at once
    assert (await client.post(f"/api/v1/issues/{issue_id}/resume")).status_code == 200

    async def sent() -> bool:
        return await status_of(client, issue_id) == "sent"

    await wait_for(sent, 60, "the rest to be sent")
    assert received(smtpd) == Counter(emails)


async def test_cancel_stops_the_send(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True, smtp_url=f"{smtpd.url}?rate=20")
    await seed(db, 60)
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_for(lambda: _at_least(smtpd, 5), 30, "the first messages")
    assert (await client.post(f"/api/v1/issues/{issue_id}/cancel")).status_code == 200
    stopped = await settled(smtpd)
    assert stopped < 60
    assert max(received(smtpd).values()) == 1

    async def all_cancelled() -> bool:
        c = await counts(db, issue_id)
        return c.get("queued", 0) == 0 and c.get("sending", 0) == 0

    await wait_for(all_cancelled, 10, "the deliveries to be cancelled")
    c = await counts(db, issue_id)
    assert c == {"sent": stopped, "cancelled": 60 - stopped}
    assert await status_of(client, issue_id) == "cancelled"


async def test_a_scheduled_send_starts_on_time_not_before(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True)
    emails = await seed(db, 10)
    arrivals: list[float] = []
    lock = threading.Lock()

    def reply(r: Received) -> str:
        with lock:
            arrivals.append(time.time())
        return "250 OK"

    smtpd.reply = reply
    issue_id = await new_issue(client)
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    answer = await send(client, issue_id, send_at=send_at.isoformat())
    assert answer["status"] == "scheduled"
    await asyncio.sleep(1)
    assert await status_of(client, issue_id) == "scheduled" and not smtpd.received

    async def sent() -> bool:
        return await status_of(client, issue_id) == "sent"

    await wait_for(sent, 30, "the scheduled send")
    assert received(smtpd) == Counter(emails)
    assert min(arrivals) >= send_at.timestamp()


async def test_unsubscribed_or_blocklisted_during_the_send_are_skipped(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True, smtp_url=f"{smtpd.url}?rate=10")
    emails = await seed(db, 40)
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_for(lambda: _at_least(smtpd, 3), 30, "the first messages")
    gone, blocked = emails[-3:], emails[-6:-3]
    engine = make_engine(db)
    async with engine.begin() as conn:
        ids = {e: i for e, i in (await conn.execute(
            Subscriber.__table__.select().with_only_columns(Subscriber.email, Subscriber.id)
        )).all()}  # fmt: skip
        await conn.execute(
            update(Subscription)
            .where(Subscription.subscriber_id.in_([ids[e] for e in gone]))
            .values(status="unsubscribed")
        )
        await conn.execute(
            update(Subscriber)
            .where(Subscriber.id.in_([ids[e] for e in blocked]))
            .values(status="blocklisted", blocklist_reason="manual")
        )
    await engine.dispose()

    async def sent() -> bool:
        return await status_of(client, issue_id) == "sent"

    await wait_for(sent, 60, "the send to end")
    assert received(smtpd) == Counter(emails[:-6])
    assert await counts(db, issue_id) == {"sent": 34, "skipped": 6}


async def _at_least(smtpd: SMTPServer, n: int) -> bool:
    return len(smtpd.received) >= n


async def test_a_hard_bounce_the_database_could_not_take_is_given_back_for_another_try(
    client: Any, db: str
) -> None:
    """The worker no longer pings pooled connections: the first use after a database
    restart fails. A hard bounce met then is returned for the next flush, not dropped."""
    from sqlalchemy import select

    from app.db import make_sessionmaker
    from app.delivery.control import record_hard_bounces
    from app.models import Bounce
    from tests.smtp import free_port

    settings = client.app.state.settings
    emails = await seed(db, 1)
    bounce = (7, emails[0], "550 5.1.1 no such user")
    down = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none",
                       pool_pre_ping=False)  # fmt: skip
    try:
        left = await record_hard_bounces(make_sessionmaker(down), settings, [bounce])
    finally:
        await down.dispose()
    assert left == [bounce]  # refused connection: kept
    assert await record_hard_bounces(client.app.state.sessionmaker, settings, left) == []
    async with client.app.state.sessionmaker() as s:
        rows = (await s.scalars(select(Bounce.email).where(Bounce.type == "hard"))).all()
    assert rows == [emails[0]]
