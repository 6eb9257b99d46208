"""The preference page's "don't track me": attributes.tracking false, and nothing counted after."""

from __future__ import annotations

from typing import Any

from app import tokens
from app.models import Subscriber
from tests.engagement.helpers import BROWSER_UA, flush, open_url, public, sent_issue


async def test_a_reader_says_no_on_the_preference_page(app_factory: Any) -> None:
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client)
    sid = sent.subscribers["ann@example.org"]
    token = tokens.make(
        client.app.state.settings.secret_key_value, "unsubscribe", sid, sent.issue_id
    )
    reader = public(client, **{"User-Agent": BROWSER_UA})
    page = await reader.get(f"/preferences/{token}")
    assert page.status_code == 200 and 'name="no_tracking" value="1">' in page.text
    saved = await reader.post(f"/preferences/{token}/tracking", data={"no_tracking": "1"})
    assert saved.status_code == 200 and 'name="no_tracking" value="1" checked' in saved.text
    async with client.app.state.sessionmaker() as s:
        attributes = (await s.get(Subscriber, sid)).attributes  # type: ignore[union-attr]
    assert attributes["tracking"] is False
    await reader.get(open_url(client, sent, "ann@example.org"))  # an old message's pixel
    await flush(client)
    stats = (await client.get(f"/api/v1/issues/{sent.issue_id}/stats")).json()
    assert stats["opens"] == stats["machine_opens"] == 0
    items = (await client.get(f"/api/v1/subscribers/{sid}/events")).json()["items"]
    assert items == []
    forged = await reader.post(f"/preferences/{token[:-2]}xx/tracking", data={})
    assert forged.status_code == 404


async def test_ticking_it_off_again_lets_tracking_back(app_factory: Any) -> None:
    client = await app_factory()
    sent = await sent_issue(client, {"ann@example.org": {"tracking": False}})
    sid = sent.subscribers["ann@example.org"]
    token = tokens.make(client.app.state.settings.secret_key_value, "unsubscribe", sid, 0)
    reader = public(client)
    assert 'value="1" checked' in (await reader.get(f"/preferences/{token}")).text
    await reader.post(f"/preferences/{token}/tracking", data={})
    async with client.app.state.sessionmaker() as s:
        assert (await s.get(Subscriber, sid)).attributes["tracking"] is True  # type: ignore[union-attr]
