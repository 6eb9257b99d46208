"""The issue report's engagement part in headless Chromium: figures, links, timeline; axe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from app.db import utcnow
from tests.conftest import ADMIN_TOKEN, AppClient
from tests.console.conftest import (  # noqa: F401 (fixtures)
    LiveConsole,
    browser,
    live_console,
    signed_in_page,
)
from tests.console.test_core_browser import accessible
from tests.engagement.helpers import BROWSER_UA, click_url, flush, open_url, public, sent_issue
from tests.issues.factory import set_issue

pytestmark = [pytest.mark.chromium, pytest.mark.one_backend("sqlite")]


async def test_a_viewer_reads_opens_clicks_links_and_the_timeline(
    live_console: LiveConsole,  # noqa: F811 (the fixture imported above)
    signed_in_page: Callable[..., Awaitable[Any]],  # noqa: F811
) -> None:
    client = AppClient(
        base_url=live_console.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    client.app = live_console.app
    try:
        readers = {"ann@example.org": {}, "bob@example.org": {}, "cid@example.org": {}}
        sent = await sent_issue(client, readers, minutes_ago=90)
        await set_issue(client, sent.issue_id, status="sent",
                        started_at=utcnow() - timedelta(minutes=95))  # fmt: skip
        person = public(client, **{"User-Agent": BROWSER_UA})
        for email in ("ann@example.org", "bob@example.org"):
            assert (await person.get(open_url(client, sent, email))).status_code == 200
        assert (await person.get(click_url(client, sent, "ann@example.org", 3))).status_code == 302
        scanner = public(client, "40.94.1.1", **{"User-Agent": "Mimecast Scanner"})
        assert (await scanner.get(click_url(client, sent, "cid@example.org", 2))).status_code == 302
        await flush(client)
    finally:
        await client.aclose()

    page = await signed_in_page("viewer")
    await page.goto(f"{live_console.url}/admin/issues/{sent.issue_id}/report")
    section = page.locator("section.engagement")
    await section.get_by_role("heading", name="Opens and clicks").wait_for()
    figures = {}
    for card in await section.locator(".figures .card").all():
        label = (await card.locator(".muted").inner_text()).strip()
        figures[label] = (await card.locator(".figure").inner_text()).strip()
    assert figures["Opens"] == "2" and figures["People who opened"] == "2"
    assert figures["Clicks"] == "1" and figures["People who clicked"] == "1"
    assert figures["Click-through rate"] == "33.3 %"  # one person of the three sent it
    assert "0 opens and 1 clicks were made by machines" in await section.inner_text()
    links = section.get_by_role("table", name="Clicks per link, in message order")
    rows = [[c.strip() for c in (await r.inner_text()).split("\t")]
            for r in await links.locator("tbody tr").all()]  # fmt: skip
    assert rows == [["https://example.org/one", "0", "0", "1"],
                    ["https://example.org/two", "1", "1", "0"],
                    ["https://example.org/three", "0", "0", "0"]]  # fmt: skip
    chart = section.get_by_role("img", name="Timeline")
    assert await chart.is_visible()
    box = await chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 50
    assert await chart.locator("polyline").count() == 2
    figures_table = section.get_by_role("table", name="The timeline as figures")
    assert "2" in await figures_table.locator("tbody").inner_text()
    await accessible(page)
