"""link.clicked: one outbox event per person's click, written with the flush; never for a
machine's click; no subscriber in aggregate mode; nothing at all with tracking off."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.webhooks.models import WebhookEvent
from tests.conftest import AppClient
from tests.engagement.helpers import BROWSER_UA, click_url, flush, open_url, public, sent_issue
from tests.webhooks.helpers import register

READERS = {"ann@example.org": {}, "bob@example.org": {}}
SCANNER_UA = "Mozilla/5.0 (compatible; Barracuda Sentinel; +https://www.barracuda.com)"


async def _clicked(client: AppClient) -> list[dict[str, Any]]:
    async with client.app.state.sessionmaker() as s:
        rows = await s.scalars(select(WebhookEvent.data).where(WebhookEvent.type == "link.clicked"))
        return list(rows)


async def _hooked(app_factory: Any, mode: str) -> AppClient:
    client: AppClient = await app_factory(tracking=mode, webhook_allow_private=True)
    await register(client, "http://127.0.0.1:9/hook", ["link.clicked"])
    return client


@pytest.mark.parametrize("mode", ["individual", "aggregate"])
async def test_a_persons_click_is_announced_and_a_machines_is_not(
    app_factory: Any, mode: str
) -> None:
    client = await _hooked(app_factory, mode)
    sent = await sent_issue(client, READERS)
    ann = public(client, **{"User-Agent": BROWSER_UA})
    assert (await ann.get(click_url(client, sent, "ann@example.org", 3))).status_code == 302
    assert (await ann.get(click_url(client, sent, "ann@example.org", 3))).status_code == 302
    await ann.get(open_url(client, sent, "ann@example.org"))  # an open is no click
    scanner = public(client, "40.94.1.1", **{"User-Agent": SCANNER_UA})
    assert (await scanner.head(click_url(client, sent, "bob@example.org", 2))).status_code == 302
    assert await _clicked(client) == []  # nothing before the flush: written with the rollups
    await flush(client)
    [event] = await _clicked(client)  # the repeat within seconds is one click, as counted
    person = sent.subscribers["ann@example.org"] if mode == "individual" else None
    assert event == {"issue_id": sent.issue_id, "url": sent.links[3], "subscriber_id": person,
                     "at": event["at"]}  # fmt: skip
    assert datetime.fromisoformat(event["at"]).tzinfo is not None


async def test_no_event_with_tracking_off(app_factory: Any) -> None:
    off = await _hooked(app_factory, "off")
    sent = await sent_issue(off)
    assert sent.links == {}  # links untouched: no redirect to follow, no click to announce
    reader = public(off, **{"User-Agent": BROWSER_UA})
    assert (await reader.get(click_url(off, sent, "ann@example.org", 2))).status_code == 404
    await flush(off)
    assert await _clicked(off) == []


async def test_no_event_where_no_webhook_wants_it(app_factory: Any) -> None:
    unhooked = await app_factory(tracking="individual")  # no webhook wants it: no row
    sent = await sent_issue(unhooked)
    reader = public(unhooked, **{"User-Agent": BROWSER_UA})
    assert (await reader.get(click_url(unhooked, sent, "ann@example.org", 2))).status_code == 302
    await flush(unhooked)
    assert await _clicked(unhooked) == []
