"""Recipients, issues and bounded waits for the dispatcher tests."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, insert, select

from app import config
from app.db import make_engine, utcnow
from app.models import Delivery, MailingList, Subscriber, Subscription
from tests.conftest import AppClient
from tests.smtp import SMTPServer

BODY = "# Hello {{ subscriber.name }}\n\nThis week's news, for {{ subscriber.email }}.\n"


async def seed(url: str, count: int, slug: str = "news", prefix: str = "r") -> list[str]:
    """A list with `count` confirmed, active members (bulk inserts); returns their addresses."""
    engine = make_engine(url)
    emails = [f"{prefix}{i:06d}@example.org" for i in range(count)]
    async with engine.begin() as conn:
        list_id = (
            await conn.execute(
                insert(MailingList)
                .values(slug=slug, name=slug.title(), description="", double_opt_in=False)
                .returning(MailingList.id)
            )
        ).scalar_one()
        for start in range(0, count, 2000):
            rows = [
                {"email": e, "email_key": e, "name": f"Reader {e[:7]}", "attributes": {}}
                for e in emails[start : start + 2000]
            ]
            ids = (await conn.execute(insert(Subscriber).returning(Subscriber.id), rows)).scalars()
            await conn.execute(
                insert(Subscription),
                [
                    {
                        "subscriber_id": i,
                        "list_id": list_id,
                        "status": "confirmed",
                        "confirmed_at": utcnow(),
                    }  # fmt: skip
                    for i in ids
                ],
            )
    await engine.dispose()
    return emails


async def new_issue(client: AppClient, slug: str = "news", **fields: Any) -> int:
    payload = {"subject": "Week 12", "lists": [slug], "format": "markdown", "body": BODY}
    payload.update(fields)
    response = await client.post("/api/v1/issues", json=payload)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def send(client: AppClient, issue_id: int, **body: Any) -> dict[str, Any]:
    response = await client.post(f"/api/v1/issues/{issue_id}/send", json=body)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


async def status_of(client: AppClient, issue_id: int) -> str:
    response = await client.get(f"/api/v1/issues/{issue_id}")
    return str(response.json()["status"])


async def counts(url: str, issue_id: int) -> dict[str, int]:
    """Deliveries of an issue by status, straight from the database."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(Delivery.status, func.count())
                .where(Delivery.issue_id == issue_id)
                .group_by(Delivery.status)
            )
            return {status: n for status, n in rows}
    finally:
        await engine.dispose()


async def deliveries(url: str, issue_id: int) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(*Delivery.__table__.c, Subscriber.email)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.issue_id == issue_id)
            )
            return list(rows)
    finally:
        await engine.dispose()


def received(server: SMTPServer) -> Counter[str]:
    """How many times each address was accepted by the SMTP server."""
    with server.lock:
        return Counter(rcpt for r in server.received for rcpt in r.recipients)


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll `check` every 0.1 s; fail after `timeout` seconds (bounded in count and time)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout * 10) + 1):
        if await check():
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def fan_out_in_batches(monkeypatch: Any, width: int) -> None:
    """Every send of more than 10 recipients is fanned out in batches of `width` ids: the
    apps' own settings (read from the environment when each app is made) and the module's
    (for queue.claim called directly) alike."""
    monkeypatch.setenv("TIDINGS_FANOUT_INLINE_LIMIT", "10")
    monkeypatch.setenv("TIDINGS_FANOUT_BATCH", str(width))
    monkeypatch.setattr(config.settings, "fanout_inline_limit", 10)
    monkeypatch.setattr(config.settings, "fanout_batch", width)


async def rows_and_people(url: str, issue_id: int) -> tuple[int, int]:
    """(deliveries, distinct subscribers among them) of the issue."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            n, distinct = (
                await conn.execute(
                    select(func.count(), func.count(Delivery.subscriber_id.distinct())).where(
                        Delivery.issue_id == issue_id
                    )
                )
            ).one()
    finally:
        await engine.dispose()
    return int(n), int(distinct)
