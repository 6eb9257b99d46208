"""A follow-up to those who did not open: a new draft whose recipients are the non-openers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from app.db import utcnow
from app.models import Delivery, Subscriber, Subscription
from tests.engagement.helpers import BROWSER_UA, click_url, flush, open_url, public, sent_issue
from tests.issues.factory import make_subscriber, set_issue

READERS = {
    "ann@example.org": {},
    "bob@example.org": {},
    "cid@example.org": {},
    "dee@example.org": {},
}


async def test_the_follow_up_goes_to_those_no_person_opened_it_for(app_factory: Any) -> None:
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client, READERS)
    early = await client.post(f"/api/v1/issues/{sent.issue_id}/follow-up")
    assert early.status_code == 409  # still a draft: nothing was sent yet
    await set_issue(client, sent.issue_id, status="sent", started_at=utcnow())
    reader = public(client, **{"User-Agent": BROWSER_UA})
    await reader.get(open_url(client, sent, "ann@example.org"))
    await reader.get(click_url(client, sent, "dee@example.org", 2))  # images off: a click
    apple = public(client, "17.58.0.9", **{"User-Agent": "Mozilla/5.0"})
    await apple.get(open_url(client, sent, "bob@example.org"))  # a prefetch is no one's open
    await flush(client)
    answer = await client.post(f"/api/v1/issues/{sent.issue_id}/follow-up")
    assert answer.status_code == 201, answer.text
    draft = answer.json()
    assert draft["status"] == "draft" and draft["id"] != sent.issue_id
    count = await client.get(f"/api/v1/segments/{draft['segment']}/count")
    assert count.json() == {"count": 2}  # bob (a machine's open) and cid
    shown = (await client.get(f"/api/v1/issues/{draft['id']}")).json()
    assert shown["segment"] == draft["segment"] and shown["lists"] == ["news"]
    started = await client.post(f"/api/v1/issues/{draft['id']}/send")
    assert started.json() == {"status": "sending", "recipients": 2}
    log = (await client.get(f"/api/v1/issues/{draft['id']}/deliveries")).json()["items"]
    assert sorted(d["email"] for d in log) == ["bob@example.org", "cid@example.org"]


async def test_no_follow_up_where_no_event_names_anyone(app_factory: Any) -> None:
    client = await app_factory()  # aggregate
    sent = await sent_issue(client)
    await set_issue(client, sent.issue_id, status="sent")
    answer = await client.post(f"/api/v1/issues/{sent.issue_id}/follow-up")
    assert answer.status_code == 409 and "individual" in answer.text


async def test_the_follow_up_is_exactly_the_delivered_who_did_not_open(app_factory: Any) -> None:
    """Not who joined since, not who was never sent it, not who left since: only bob."""
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client, READERS)  # ann opens; bob, cid and dee do not
    started = utcnow()
    fay = await make_subscriber(client, "fay@example.org", lists={"news": "confirmed"})
    eve = await make_subscriber(client, "eve@example.org", lists={"news": "confirmed"})
    async with client.app.state.sessionmaker() as s, s.begin():
        # fay was a member before the send but was never sent it (pending then, or joined
        # the list later); eve signed up after the send.
        for who, at in ((fay, started - timedelta(days=1)), (eve, started + timedelta(minutes=1))):
            await s.execute(update(Subscriber).where(Subscriber.id == who).values(created_at=at))
        await s.execute(
            update(Delivery)
            .where(  # dee's message failed: not delivered
                Delivery.id == sent.deliveries["dee@example.org"]
            )
            .values(status="failed")
        )
        await s.execute(update(Subscription).where(  # cid has left the list since
            Subscription.subscriber_id == sent.subscribers["cid@example.org"]
        ).values(status="unsubscribed"))  # fmt: skip
    await set_issue(client, sent.issue_id, status="sent", started_at=started)
    reader = public(client, **{"User-Agent": BROWSER_UA})
    await reader.get(open_url(client, sent, "ann@example.org"))
    await flush(client)
    answer = await client.post(f"/api/v1/issues/{sent.issue_id}/follow-up")
    assert answer.status_code == 201, answer.text
    draft = answer.json()
    started_send = await client.post(f"/api/v1/issues/{draft['id']}/send")
    assert started_send.json() == {"status": "sending", "recipients": 1}, started_send.text
    log = (await client.get(f"/api/v1/issues/{draft['id']}/deliveries")).json()["items"]
    assert [d["email"] for d in log] == ["bob@example.org"]


async def test_who_joins_between_the_draft_and_its_send_is_not_sent_the_follow_up(
    app_factory: Any,
) -> None:
    """The rule is read at the follow-up's send: a person on file before the first send,
    who joins the list only after the draft was made, was never sent the issue."""
    client = await app_factory(tracking="individual")
    sent = await sent_issue(client, READERS)
    started = utcnow()
    await set_issue(client, sent.issue_id, status="sent", started_at=started)
    gus = await make_subscriber(client, "gus@example.org", lists={})
    async with client.app.state.sessionmaker() as s, s.begin():
        await s.execute(update(Subscriber).where(Subscriber.id == gus).values(
            created_at=started - timedelta(days=30)))  # fmt: skip
    answer = await client.post(f"/api/v1/issues/{sent.issue_id}/follow-up")
    assert answer.status_code == 201, answer.text
    draft = answer.json()
    news = [{"slug": "news", "status": "confirmed"}]
    joined = await client.patch(f"/api/v1/subscribers/{gus}", json={"lists": news})
    assert joined.status_code == 200, joined.text
    members = (await client.get(f"/api/v1/subscribers/{gus}")).json()["lists"]
    assert members == news
    rules = (await client.get(f"/api/v1/segments/{draft['segment']}")).json()["rules"]
    assert rules == {"all": [{"engaged": "sent", "issue": sent.issue_id},
                             {"not": {"engaged": "opened", "issue": sent.issue_id}}]}  # fmt: skip
    started_send = await client.post(f"/api/v1/issues/{draft['id']}/send")
    assert started_send.json() == {"status": "sending", "recipients": 4}, started_send.text
    log = (await client.get(f"/api/v1/issues/{draft['id']}/deliveries")).json()["items"]
    assert sorted(d["email"] for d in log) == sorted(READERS)
