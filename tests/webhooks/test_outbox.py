"""The outbox: an event row exists exactly when its change committed, for every source."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from app.bounces.dsn import BounceEvent
from app.bounces.policy import record_bounce
from app.issues import lifecycle
from app.models import Subscriber
from app.subscribers import memberships
from app.webhooks import events, outbox
from app.webhooks.events import EVENTS, emit
from app.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEvent
from tests.conftest import AppClient, make_list
from tests.issues.factory import make_issue
from tests.webhooks.helpers import count_events, register


@pytest.fixture
async def hooked(app_factory: Any) -> AppClient:
    """An app with one webhook for every event (loopback allowed; nothing is sent here)."""
    client: AppClient = await app_factory(webhook_allow_private=True)
    await register(client, "http://127.0.0.1:9/hook", list(EVENTS))
    return client


async def _events(client: AppClient) -> list[tuple[str, dict[str, Any]]]:
    async with client.app.state.sessionmaker() as s:
        rows = await s.execute(select(WebhookEvent.type, WebhookEvent.data)
                               .order_by(WebhookEvent.created_at))  # fmt: skip
        return [(t, d) for t, d in rows]


async def test_no_webhook_no_row(client: AppClient) -> None:
    await make_list(client, "news")
    r = await client.post("/api/v1/subscribers", json={"email": "a@example.org"})
    assert r.status_code == 201
    assert await count_events(client) == 0


async def test_event_rolls_back_with_its_change(hooked: AppClient) -> None:
    sessionmaker = hooked.app.state.sessionmaker
    with pytest.raises(RuntimeError):
        async with sessionmaker() as s, s.begin():
            await emit(s, "subscriber.created", {"id": 1})
            s.add(Subscriber(email="b@example.org", email_key="b@example.org"))
            await s.flush()
            raise RuntimeError("the change fails after the event was written")
    assert await count_events(hooked) == 0
    # A refused API write (409: the address exists) leaves one event, its first creation's.
    await hooked.post("/api/v1/subscribers", json={"email": "c@example.org"})
    r = await hooked.post("/api/v1/subscribers", json={"email": "c@example.org"})
    assert r.status_code == 409
    assert await count_events(hooked, "subscriber.created") == 1


async def test_public_sign_up_writes_the_event_on_its_core_connection(hooked: AppClient) -> None:
    await make_list(hooked, "open", public=True, double_opt_in=False)
    r = await hooked.post("/api/v1/subscribe", json={"email": "d@example.org", "lists": ["open"]})
    assert r.status_code in (200, 201, 202), r.text
    again = await hooked.post("/api/v1/subscribe", json={"email": "d@example.org",
                                                        "lists": ["open"]})  # fmt: skip
    assert again.status_code == r.status_code
    created = [d for t, d in await _events(hooked) if t == "subscriber.created"]
    assert len(created) == 1  # the known address is not created twice
    assert created[0]["email"] == "d@example.org"


async def test_unsubscribe_erase_bounce_and_issue_events(hooked: AppClient) -> None:
    await make_list(hooked, "news")
    r = await hooked.post("/api/v1/subscribers", json={"email": "e@example.org",
                                                      "lists": ["news"]})  # fmt: skip
    subscriber_id = r.json()["id"]
    sessionmaker = hooked.app.state.sessionmaker
    async with sessionmaker() as s, s.begin():
        for _ in range(2):  # the second changes nothing, so it emits nothing
            await memberships.unsubscribe(
                session=s, subscriber_id=subscriber_id, issue_id=None, everything=True
            )
    settings = hooked.app.state.settings
    for kind in ("soft", "complaint", "unsubscribe"):
        async with sessionmaker() as s, s.begin():
            event = BounceEvent(type=kind, email="e@example.org", event_key=f"k-{kind}")
            await record_bounce(session=s, settings=settings, event=event, source="test")
    issue = await make_issue(hooked)
    async with sessionmaker() as s, s.begin():
        assert await lifecycle.start(s, issue["id"]) == 0
    async with sessionmaker() as s, s.begin():
        assert await lifecycle.finish_sending(session=s) == [issue["id"]]
    assert (await hooked.delete(f"/api/v1/subscribers/{subscriber_id}")).status_code == 204
    kinds = [t for t, _ in await _events(hooked)]
    assert kinds == ["subscriber.created", "subscriber.confirmed", "subscriber.unsubscribed",
                     "bounce.recorded", "complaint.recorded", "issue.started", "issue.finished",
                     "subscriber.erased"]  # fmt: skip
    data = dict(await _events(hooked))
    person = {"id": subscriber_id, "email": "e@example.org", "name": None}
    assert (
        data["subscriber.confirmed"] == data["subscriber.unsubscribed"] == person | {"list": "news"}
    )
    assert data["subscriber.erased"] == {"id": subscriber_id}  # nothing of the person left
    assert data["complaint.recorded"]["email"] == "e@example.org"
    assert data["issue.started"] == {"id": issue["id"], "recipients": 0}


async def test_cache_spares_a_query_until_a_webhook_changes(client: AppClient) -> None:
    sessionmaker = client.app.state.sessionmaker
    events.forget_subscriptions()  # what an earlier test's webhooks left in this process
    async with sessionmaker() as s, s.begin():
        assert "subscriber.created" not in await events.subscribed_events(s)
        # A webhook written behind this process's back is seen only after the cache lapses,
        await s.execute(insert(events.Webhook).values(
            url="http://x.example/", events=["subscriber.created"], secret_sealed="-",
            enabled=True, consecutive_failures=0, created_at=events.utcnow(),
            updated_at=events.utcnow()))  # fmt: skip
        assert "subscriber.created" not in await events.subscribed_events(s)
        events.forget_subscriptions()  # ...or when this process changes one (the service)
        assert "subscriber.created" in await events.subscribed_events(s)


async def test_the_persons_confirmation_emits_confirmed_once(hooked: AppClient) -> None:
    from app.subscribers import links

    await make_list(hooked, "news")
    body = {"email": "f@example.org", "lists": ["news"], "subscription_status": "pending"}
    subscriber_id = (await hooked.post("/api/v1/subscribers", json=body)).json()["id"]
    for _ in range(2):  # an old link opened again confirms nothing more
        async with hooked.app.state.sessionmaker() as s, s.begin():
            await links.confirm(session=s, subscriber_id=subscriber_id)
    confirmed = [d for t, d in await _events(hooked) if t == "subscriber.confirmed"]
    assert confirmed == [
        {"id": subscriber_id, "email": "f@example.org", "name": None, "list": "news"}
    ]


async def test_prune_forgets_old_finished_events_and_keeps_pending_ones(
    hooked: AppClient,
) -> None:
    sessionmaker = hooked.app.state.sessionmaker
    old = events.utcnow() - timedelta(days=40)
    async with sessionmaker() as s, s.begin():
        (hook_id,) = (await s.scalars(select(events.Webhook.id))).all()
        for event_id, status in (("msg_done", "delivered"), ("msg_wait", "pending")):
            await s.execute(insert(WebhookEvent).values(id=event_id, type="issue.started",
                            data={}, created_at=old, fanned_out=True))  # fmt: skip
            row = {"webhook_id": hook_id, "event_id": event_id, "status": status,
                   "attempts": 1, "next_attempt_at": old, "created_at": old}  # fmt: skip
            await s.execute(insert(WebhookDelivery).values(**row))
        delivery = await s.scalar(select(WebhookDelivery.id).where(
            WebhookDelivery.event_id == "msg_done"))  # fmt: skip
        await s.execute(insert(WebhookAttempt).values(delivery_id=delivery, attempted_at=old,
                        status_code=200, duration_ms=1))  # fmt: skip
    assert await outbox.prune(sessionmaker, older_than=timedelta(days=30)) == 1
    async with sessionmaker() as s:
        assert (await s.scalars(select(WebhookEvent.id))).all() == ["msg_wait"]
        assert (await s.scalars(select(WebhookAttempt.id))).all() == []
