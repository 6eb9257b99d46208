"""Events older than TIDINGS_EVENTS_RETENTION_DAYS go; the counts stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from app.db import utcnow
from app.engagement import retention
from app.engagement.models import EngagementEvent
from tests.engagement.helpers import BROWSER_UA, count_events, flush, open_url, public, sent_issue


async def test_old_events_are_purged_and_the_counts_kept(app_factory: Any) -> None:
    client = await app_factory(tracking="individual", events_retention_days=30)
    sent = await sent_issue(client, {"ann@example.org": {}, "bob@example.org": {}})
    reader = public(client, **{"User-Agent": BROWSER_UA})
    for email in sent.deliveries:
        await reader.get(open_url(client, sent, email))
    await flush(client)
    assert await count_events(client) == 2
    async with client.app.state.sessionmaker() as s, s.begin():
        await s.execute(
            update(EngagementEvent)
            .where(EngagementEvent.delivery_id == sent.deliveries["ann@example.org"])
            .values(at=utcnow() - timedelta(days=31))
        )
    async with client.app.state.sessionmaker() as s, s.begin():
        assert await retention.purge(s, client.app.state.settings) == 1
    assert await count_events(client) == 1
    stats = (await client.get(f"/api/v1/issues/{sent.issue_id}/stats")).json()
    assert stats["opens"] == 2 and stats["unique_opens"] == 2
