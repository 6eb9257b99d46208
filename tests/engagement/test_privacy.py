"""Privacy: aggregate mode and a reader who said no leave no event row naming anyone."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.engagement.models import EngagementCount, EngagementSeen
from tests.conftest import AppClient
from tests.engagement.helpers import (
    BROWSER_UA,
    click_url,
    count_events,
    event_rows,
    flush,
    open_url,
    public,
    sent_issue,
)


async def _act(client: AppClient, sent: Any, email: str) -> None:
    reader = public(client, **{"User-Agent": BROWSER_UA})
    assert (await reader.get(open_url(client, sent, email))).status_code == 200
    assert (await reader.get(click_url(client, sent, email, 2))).status_code == 302


async def test_aggregate_mode_counts_without_naming_anyone(client: AppClient) -> None:
    assert client.app.state.settings.tracking == "aggregate"  # the default
    sent = await sent_issue(client)
    await _act(client, sent, "ann@example.org")
    await flush(client)
    assert await count_events(client) == 0
    async with client.app.state.sessionmaker() as s:
        seen = list(await s.scalars(select(EngagementSeen)))
        counts = list(await s.scalars(select(EngagementCount)))
    ids = {str(sent.deliveries["ann@example.org"]), str(sent.subscribers["ann@example.org"])}
    assert seen and all(len(x.digest) == 16 and x.digest not in ids for x in seen)
    assert sum(c.total for c in counts if c.kind == "open") == 1
    answer = await client.get(f"/api/v1/subscribers/{sent.subscribers['ann@example.org']}/events")
    assert answer.status_code == 409


async def test_a_reader_who_said_no_is_never_recorded(app_factory: Any) -> None:
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client, {"ann@example.org": {"tracking": False}, "bob@example.org": {}})
    await _act(client, sent, "ann@example.org")
    await _act(client, sent, "bob@example.org")
    await flush(client)
    rows = await event_rows(client)
    assert {r.subscriber_id for r in rows} == {sent.subscribers["bob@example.org"]}
    stats = (await client.get(f"/api/v1/issues/{sent.issue_id}/engagement")).json()
    assert stats["opens"] == 1 and stats["clicks"] == 1  # bob only


async def test_individual_events_per_subscriber_and_erase_removes_them(app_factory: Any) -> None:
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client)
    await _act(client, sent, "ann@example.org")
    await flush(client)
    sid = sent.subscribers["ann@example.org"]
    items = (await client.get(f"/api/v1/subscribers/{sid}/events")).json()["items"]
    assert sorted((i["type"], i.get("url"), i["machine"], i["issue_id"]) for i in items) == [
        ("click", "https://example.org/one", False, sent.issue_id),
        ("open", None, False, sent.issue_id),
    ]
    assert (await client.delete(f"/api/v1/subscribers/{sid}")).status_code == 204
    assert await count_events(client) == 0
