"""How SMTP replies are handled, against a scripted aiosmtpd: retry, fail, back off, pause."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from app.db import make_engine
from app.models import Bounce, RateBucket
from app.replies import hard_bounce
from tests.delivery.helpers import counts, deliveries, new_issue, received, seed, send, wait_for
from tests.smtp import Received, SMTPServer


def first_time(answer: str | None, who: Callable[[str], bool]) -> Callable[[Received], str | None]:
    """A reply script: `answer` the first time each matching address is tried, then 250."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def reply(r: Received) -> str | None:
        with lock:
            seen[r.recipients[0]] += 1
            if who(r.recipients[0]) and seen[r.recipients[0]] == 1:
                return answer
        return "250 OK"

    return reply


async def wait_sent(client: Any, issue_id: int, timeout: float = 60) -> None:
    async def done() -> bool:
        return (await client.get(f"/api/v1/issues/{issue_id}")).json()["status"] == "sent"

    await wait_for(done, timeout, f"issue {issue_id} to be sent")


async def test_451_is_retried_and_counted(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True)
    emails = await seed(db, 10)
    smtpd.reply = first_time("451 4.3.0 try again later", lambda a: a == emails[3])
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_sent(client, issue_id)
    assert received(smtpd) == Counter(emails)
    rows = {r.email: r for r in await deliveries(db, issue_id)}
    assert rows[emails[3]].attempts == 2 and rows[emails[3]].status == "sent"
    assert rows[emails[3]].last_error is None
    assert {rows[e].attempts for e in emails if e != emails[3]} == {1}


async def test_550_user_unknown_fails_at_once_and_is_a_hard_bounce(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True)
    emails = await seed(db, 8)
    bad = emails[5]
    smtpd.reply = lambda r: "550 5.1.1 no such user" if r.recipients[0] == bad else "250 OK"
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_sent(client, issue_id)
    assert received(smtpd) == Counter(e for e in emails if e != bad)
    rows = {r.email: r for r in await deliveries(db, issue_id)}
    assert rows[bad].status in ("failed", "bounced")  # bounced once the policy saw it
    assert rows[bad].attempts == 1
    assert "550" in rows[bad].last_error and "5.1.1" in rows[bad].last_error
    engine = make_engine(db)

    async def bounce_rows() -> list[Any]:
        async with engine.connect() as conn:
            return list((await conn.execute(select(Bounce.__table__))).all())

    async def recorded() -> bool:
        return bool(await bounce_rows())

    try:
        # The writer hands an SMTP hard bounce to the bounce policy just after the failure
        # is written, and that write may be the one that finished the issue: wait for it.
        await wait_for(recorded, 10, "the SMTP hard bounce to be recorded")
        bounces = await bounce_rows()
    finally:
        await engine.dispose()
    assert [(b.type, b.source, b.delivery_id) for b in bounces] == [("hard", "smtp", rows[bad].id)]
    subscriber = (await client.get(f"/api/v1/subscribers/{rows[bad].subscriber_id}")).json()
    assert subscriber["status"] == "blocklisted"


async def test_a_policy_550_fails_the_delivery_but_blocklists_no_one(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True)
    emails = await seed(db, 6)
    bad = emails[2]
    blocked = "550 5.7.1 Service unavailable; client [127.0.0.1] blocked using zen.spamhaus.org"
    smtpd.reply = lambda r: blocked if r.recipients[0] == bad else "250 OK"
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_sent(client, issue_id)
    rows = {r.email: r for r in await deliveries(db, issue_id)}
    assert rows[bad].status == "failed" and rows[bad].attempts == 1
    engine = make_engine(db)
    try:
        async with engine.connect() as conn:
            bounces = (await conn.execute(select(Bounce.__table__))).all()
    finally:
        await engine.dispose()
    assert bounces == []  # our IP's reputation says nothing about the address
    subscriber = (await client.get(f"/api/v1/subscribers/{rows[bad].subscriber_id}")).json()
    assert subscriber["status"] == "active"


@pytest.mark.parametrize(
    ("code", "reply", "hard"),
    [
        (550, "550 5.1.1 <a@b.example>: Recipient address rejected: User unknown", True),
        (550, "550 Requested action not taken: mailbox unavailable", True),
        (550, "550 5.4.1 Recipient address rejected: Access denied", True),
        (550, "550 5.7.1 Message rejected as spam", False),
        (554, "554 5.7.1 Client host rejected: reverse DNS lookup failed", False),
        (553, "553 5.1.8 Sender address rejected: Domain not found", False),
        (552, "552 5.2.2 Mailbox full", False),
        (450, "450 4.1.1 User unknown", False),
        (None, "connection dropped", False),
    ],
)
def test_what_an_smtp_reply_means(code: int | None, reply: str, hard: bool) -> None:
    assert hard_bounce(code, reply) is hard


async def test_dropped_connections_are_retried_and_delivered_once(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True, concurrency=4)
    emails = await seed(db, 30)
    smtpd.reply = first_time(None, lambda a: int(a[1:7]) % 3 == 0)  # every third one
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_sent(client, issue_id)
    assert received(smtpd) == Counter(emails)
    rows = {r.email: r for r in await deliveries(db, issue_id)}
    assert {rows[e].attempts for e in emails if int(e[1:7]) % 3 == 0} == {2}
    assert await counts(db, issue_id) == {"sent": 30}


async def test_a_burst_of_421_backs_the_server_off_without_burning_attempts(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True, concurrency=5)
    emails = await seed(db, 40)
    replies = Counter[str]()
    lock = threading.Lock()

    def reply(r: Received) -> str:
        with lock:
            replies["all"] += 1
            return "421 4.7.0 too many messages, slow down" if replies["all"] <= 12 else "250 OK"

    smtpd.reply = reply
    issue_id = await new_issue(client)
    await send(client, issue_id)
    await wait_sent(client, issue_id)
    assert received(smtpd) == Counter(emails)
    rows = await deliveries(db, issue_id)
    assert {r.attempts for r in rows} == {1}  # throttling is not the recipient's fault
    engine = make_engine(db)
    try:
        async with engine.connect() as conn:
            blocked = (await conn.execute(select(RateBucket.blocked_until))).scalars().all()
    finally:
        await engine.dispose()
    assert blocked and max(blocked) > 0  # the back-off was shared through the database


async def test_a_server_down_at_start_pauses_the_issue_and_resume_delivers_everyone(
    app_factory: Callable[..., Any], db: str
) -> None:
    server = SMTPServer()  # not started yet: connections are refused
    client = await app_factory(
        embedded_worker=True, smtp_url=server.url, failure_pause_threshold=3, concurrency=2
    )
    emails = await seed(db, 15)
    issue_id = await new_issue(client)
    await send(client, issue_id)

    async def paused() -> bool:
        return (await client.get(f"/api/v1/issues/{issue_id}")).json()["status"] == "paused"

    await wait_for(paused, 30, "the issue to pause itself")
    issue = (await client.get(f"/api/v1/issues/{issue_id}")).json()
    assert "consecutive failures" in (issue.get("status_reason") or "")
    assert (await counts(db, issue_id)).get("failed", 0) == 0
    server.start()
    try:
        response = await client.post(f"/api/v1/issues/{issue_id}/resume")
        assert response.status_code == 200, response.text
        await wait_sent(client, issue_id)
        assert received(server) == Counter(emails)
    finally:
        server.stop()
