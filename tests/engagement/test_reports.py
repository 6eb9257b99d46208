"""The timeline API: sent, people's opens and clicks, bounces, unsubscribes per hour or day."""

from __future__ import annotations

from datetime import datetime

from tests.conftest import AppClient
from tests.engagement.helpers import BROWSER_UA, click_url, flush, open_url, public, sent_issue


async def test_timeline_by_hour_and_day(client: AppClient) -> None:
    sent = await sent_issue(client, {"ann@example.org": {}, "bob@example.org": {}})
    reader = public(client, **{"User-Agent": BROWSER_UA})
    await reader.get(open_url(client, sent, "ann@example.org"))
    await reader.get(click_url(client, sent, "ann@example.org", 2))
    bot = public(client, "17.58.0.1", **{"User-Agent": "Mozilla/5.0"})
    await bot.get(open_url(client, sent, "bob@example.org"))  # a prefetch: not drawn
    await flush(client)
    for bucket in ("hour", "day"):
        answer = await client.get(f"/api/v1/issues/{sent.issue_id}/timeline?bucket={bucket}")
        assert answer.status_code == 200
        items = answer.json()["items"]
        assert sum(i["sent"] for i in items) == 2
        assert sum(i["opens"] for i in items) == 1 and sum(i["clicks"] for i in items) == 1
        assert all(set(i) == {"at", "sent", "opens", "clicks", "bounces", "unsubscribes",
                              "complaints"} for i in items)  # fmt: skip
        stamps = [datetime.fromisoformat(i["at"]) for i in items]
        assert stamps == sorted(stamps) and all(s.minute == 0 for s in stamps)
        if bucket == "day":
            assert all(s.hour == 0 for s in stamps)
    assert (
        await client.get(f"/api/v1/issues/{sent.issue_id}/timeline?bucket=week")
    ).status_code == 422
    assert (await client.get("/api/v1/issues/999/timeline")).status_code == 404
    assert (await client.get("/api/v1/issues/999/links")).status_code == 404
