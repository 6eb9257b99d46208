"""An issue compiled as the dispatcher does, with delivery rows, for the engagement tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.db import utcnow
from app.engagement import links, tokens
from app.engagement.models import EngagementEvent
from app.issues import compose
from app.models import Delivery, Issue
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber

BODY = (
    "# Hello {{ subscriber.name }}\n\n"
    "[One](https://example.org/one) [Two](https://example.org/two) "
    "[Three](https://example.org/three)\n"
)


@dataclass
class Sent:
    """An issue 'sent' to some readers: its id, link table and one delivery per reader."""

    issue_id: int
    links: dict[int, str]
    deliveries: dict[str, int]  # email -> delivery id
    subscribers: dict[str, int]


async def sent_issue(
    client: AppClient,
    readers: dict[str, dict[str, Any]] | None = None,
    *,
    minutes_ago: float = 5,
) -> Sent:
    """Compile an issue as the feeder does and leave a 'sent' delivery per reader."""
    readers = readers or {"ann@example.org": {}}
    await make_list(client, "news")
    subscribers = {
        email: await make_subscriber(
            client, email, name="Reader", lists={"news": "confirmed"}, attributes=attrs
        )
        for email, attrs in readers.items()
    }
    issue = await make_issue(client, body=BODY)
    settings = client.app.state.settings
    async with client.app.state.sessionmaker() as s, s.begin():
        row = await s.scalar(
            select(Issue).where(Issue.id == issue["id"]).options(selectinload(Issue.lists))
        )
        compiled = compose.compile_for_send(settings, row)
        table: dict[int, str] = {}
        if compiled.tracking is not None:
            await links.store(s, issue["id"], compiled.tracking.links())
            table = dict(compiled.tracking.links())
        sent_at = utcnow() - timedelta(minutes=minutes_ago)
        deliveries = {}
        for email, sid in subscribers.items():
            d = Delivery(issue_id=issue["id"], subscriber_id=sid, status="sent", sent_at=sent_at)
            s.add(d)
            await s.flush()
            deliveries[email] = d.id
    return Sent(issue["id"], table, deliveries, subscribers)


def click_url(client: AppClient, sent: Sent, email: str, index: int) -> str:
    secret = client.app.state.settings.secret_key_value
    return f"/r/{tokens.make(secret, 'click', sent.issue_id, sent.deliveries[email], index)}"


def open_url(client: AppClient, sent: Sent, email: str) -> str:
    secret = client.app.state.settings.secret_key_value
    return f"/o/{tokens.make(secret, 'open', sent.issue_id, sent.deliveries[email], 0)}"


def public(client: AppClient, address: str = "198.51.100.20", **headers: str) -> AppClient:
    """The same app as a reader's client at `address`, with no token."""
    transport = httpx.ASGITransport(app=client.app, client=(address, 40000))
    c = AppClient(transport=transport, base_url=str(client.base_url), headers=headers)
    c.app = client.app
    return c


async def flush(client: AppClient) -> None:
    """Write every buffered hit now (the recorder holds them ~2.5 s to see bursts)."""
    recorder = getattr(client.app.state, "engagement_recorder", None)
    if recorder is not None:
        await recorder.flush(hold=0)


async def event_rows(client: AppClient) -> list[EngagementEvent]:
    async with client.app.state.sessionmaker() as s:
        return list(await s.scalars(select(EngagementEvent)))


async def count_events(client: AppClient) -> int:
    async with client.app.state.sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(EngagementEvent)) or 0)


BROWSER_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Safari/605.1.15"
)
