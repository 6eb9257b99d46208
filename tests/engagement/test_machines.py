"""Scanners, prefetchers and image proxies judged on evidence, counted apart from people."""

from __future__ import annotations

from typing import Any

from tests.conftest import AppClient
from tests.engagement.helpers import (
    BROWSER_UA,
    click_url,
    event_rows,
    flush,
    open_url,
    public,
    sent_issue,
)

SCANNER_UA = "Mozilla/5.0 (compatible; Barracuda Sentinel; +https://www.barracuda.com)"
GMAIL_UA = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


async def _engagement(client: AppClient, issue_id: int) -> dict[str, Any]:
    return (await client.get(f"/api/v1/issues/{issue_id}/engagement")).json()  # type: ignore[no-any-return]


async def test_a_scanner_following_every_link_is_a_machine(app_factory: Any) -> None:
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client)
    scanner = public(client, "40.94.1.1", **{"User-Agent": SCANNER_UA})
    head = await scanner.head(click_url(client, sent, "ann@example.org", 2))
    assert head.status_code == 302
    for index in sorted(sent.links):  # the hidden link too: a scanner follows every href
        assert (
            await scanner.get(click_url(client, sent, "ann@example.org", index))
        ).status_code == 302
    await flush(client)
    stats = await _engagement(client, sent.issue_id)
    assert stats["clicks"] == stats["unique_clicks"] == 0
    # The GET of the link it had just sent HEAD to is the same hit again (one address, <10 s).
    assert stats["machine_clicks"] == len(sent.links)
    rows = await event_rows(client)
    assert rows and all(r.machine for r in rows)
    reasons = {reason.split(":")[0] for r in rows for reason in r.evidence["reasons"]}
    assert {"head-request", "user-agent", "hidden-link", "links-within-2s"} <= reasons
    table = (await client.get(f"/api/v1/issues/{sent.issue_id}/links")).json()["items"]
    assert all(t["clicks"] == 0 and t["machine_clicks"] >= 1 for t in table)


async def test_a_burst_of_links_with_a_browser_agent_is_still_a_machine(client: AppClient) -> None:
    sent = await sent_issue(client)
    bot = public(client, **{"User-Agent": BROWSER_UA})
    for index in (2, 3, 4):
        await bot.get(click_url(client, sent, "ann@example.org", index))
    await flush(client)
    stats = await _engagement(client, sent.issue_id)
    assert (stats["clicks"], stats["machine_clicks"]) == (0, 3)
    assert stats["machine_reasons"]["click"] == {"links-within-2s": 3}


async def test_apple_prefetch_is_a_machine_open_and_gmail_proxy_a_person(app_factory: Any) -> None:
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client, {"ann@example.org": {}, "bob@example.org": {}})
    apple = public(client, "17.58.63.10", **{"User-Agent": "Mozilla/5.0"})
    assert (await apple.get(open_url(client, sent, "ann@example.org"))).status_code == 200
    gmail = public(client, "66.249.84.1", **{"User-Agent": GMAIL_UA})
    assert (await gmail.get(open_url(client, sent, "bob@example.org"))).status_code == 200
    await flush(client)
    stats = await _engagement(client, sent.issue_id)
    assert (stats["opens"], stats["unique_opens"], stats["machine_opens"]) == (1, 1, 1)
    assert stats["machine_reasons"]["open"] == {"apple-prefetch-range": 1}
    by_delivery = {r.delivery_id: r for r in await event_rows(client)}
    bob = by_delivery[sent.deliveries["bob@example.org"]]
    assert not bob.machine and bob.evidence["device"] is None
    assert bob.evidence["via"] == "GoogleImageProxy"
    assert by_delivery[sent.deliveries["ann@example.org"]].machine


async def test_an_open_on_arrival_is_a_machine(client: AppClient) -> None:
    sent = await sent_issue(client, minutes_ago=0)
    reader = public(client, **{"User-Agent": BROWSER_UA})
    await reader.get(open_url(client, sent, "ann@example.org"))
    await flush(client)
    stats = await _engagement(client, sent.issue_id)
    assert (stats["opens"], stats["machine_opens"]) == (0, 1)
    [reason] = stats["machine_reasons"]["open"]
    assert reason.endswith("s-after-delivery")
