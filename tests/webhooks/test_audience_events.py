"""Every path that adds a person or moves a membership writes its webhook event, once,
over HTTP with a registered webhook: the admin API (add, PATCH), the public sign-up,
the confirm link, the preference page, one-click unsubscribe and the CSV import (one
event per person, set-based per batch); and one import event delivered end to end."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from app.subscribers.emails import confirm_token
from app.webhooks.events import EVENTS
from app.webhooks.models import WebhookEvent
from tests.conftest import AppClient, make_list
from tests.subscribers import factory
from tests.webhooks.helpers import eventually, register, running_sender
from tests.webhooks.receiver import serve

Event = tuple[str, dict[str, Any]]


@pytest.fixture
async def hooked(app_factory: Any) -> AppClient:
    """An app with one webhook for every event (loopback allowed; nothing is sent here)."""
    client: AppClient = await app_factory(webhook_allow_private=True)
    await register(client, "http://127.0.0.1:9/hook", list(EVENTS))
    return client


async def _events(client: AppClient) -> list[Event]:
    async with client.app.state.sessionmaker() as s:
        rows = await s.execute(
            select(WebhookEvent.type, WebhookEvent.data).order_by(WebhookEvent.created_at)
        )
        return [(t, d) for t, d in rows]


class Outbox:
    """The events written since the last look."""

    def __init__(self, client: AppClient) -> None:
        self.client, self.seen = client, 0

    async def new(self) -> list[Event]:
        rows = await _events(self.client)
        fresh, self.seen = rows[self.seen :], len(rows)
        return fresh


def _person(sid: int, email: str, name: str | None = None) -> dict[str, Any]:
    return {"id": sid, "email": email, "name": name}


async def _add(client: AppClient, email: str, **fields: Any) -> int:
    r = await client.post("/api/v1/subscribers", json={"email": email, **fields})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def _patch(client: AppClient, sid: int, slug: str, status: str) -> int:
    body = {"lists": [{"slug": slug, "status": status}]}
    return (await client.patch(f"/api/v1/subscribers/{sid}", json=body)).status_code


async def test_admin_add_and_patch(hooked: AppClient) -> None:
    await make_list(hooked, "news")
    await make_list(hooked, "offers")
    outbox = Outbox(hooked)
    ann = await _add(hooked, "ann@example.org", name="Ann", lists=["news", "offers"])
    a = _person(ann, "ann@example.org", "Ann")
    assert await outbox.new() == [
        ("subscriber.created", a),
        ("subscriber.confirmed", a | {"list": "news"}),
        ("subscriber.confirmed", a | {"list": "offers"}),
    ]
    bob = await _add(hooked, "bob@example.org", lists=["news"], subscription_status="pending")
    b = _person(bob, "bob@example.org")
    assert await outbox.new() == [("subscriber.created", b)]  # waits for his inbox
    assert await _patch(hooked, bob, "news", "confirmed") == 200
    assert await outbox.new() == [("subscriber.confirmed", b | {"list": "news"})]
    assert await _patch(hooked, bob, "news", "confirmed") == 200  # already: nothing
    assert await _patch(hooked, ann, "news", "unsubscribed") == 200
    assert await outbox.new() == [("subscriber.unsubscribed", a | {"list": "news"})]
    assert await _patch(hooked, ann, "news", "confirmed") == 409  # her opt-out stands
    assert await outbox.new() == []


async def test_public_sign_up_and_the_confirm_link(hooked: AppClient) -> None:
    await make_list(hooked, "open", public=True, double_opt_in=False)
    await make_list(hooked, "letters", public=True, double_opt_in=True)
    outbox = Outbox(hooked)
    for _ in range(2):  # the second sign-up of a confirmed member changes nothing
        r = await hooked.post("/api/v1/subscribe", json={"email": "c@example.org",
                                                         "lists": ["open"]})  # fmt: skip
        assert r.status_code == 202 and r.json() == {"status": "confirmed"}
    ((_, created), confirmed) = await outbox.new()
    assert created == _person(created["id"], "c@example.org")
    assert confirmed == ("subscriber.confirmed", created | {"list": "open"})
    # A double opt-in list waits for her inbox: nothing is confirmed yet.
    r = await hooked.post("/api/v1/subscribe", json={"email": "c@example.org",
                                                     "lists": ["letters"]})  # fmt: skip
    assert r.json() == {"status": "pending"}
    assert await outbox.new() == []
    token = confirm_token(hooked.app.state.settings, created["id"])
    for _ in range(2):  # an old link opened again confirms nothing more
        r = await hooked.post(f"/subscribe/confirm/{token}")
        assert r.status_code == 200
    assert await outbox.new() == [("subscriber.confirmed", created | {"list": "letters"})]


async def test_preference_page_and_one_click(hooked: AppClient) -> None:
    world = await factory.build(hooked.app)  # written straight to the tables: no events
    ann = world.subscribers["ann@example.org"]
    a = _person(ann, "ann@example.org", "ann")
    outbox = Outbox(hooked)
    url = f"/preferences/{factory.token(hooked.app, ann, world.issue_id)}"
    assert (await hooked.post(url, data={"list": ["offers"]})).status_code == 200
    assert await outbox.new() == [("subscriber.unsubscribed", a | {"list": "news"})]
    assert (await hooked.post(url, data={"list": ["offers", "news"]})).status_code == 200
    assert await outbox.new() == [("subscriber.confirmed", a | {"list": "news"})]
    assert (await hooked.post(url, data={"list": ["offers", "news"]})).status_code == 200
    assert await outbox.new() == []  # saved again unchanged
    one_click = f"/u/{factory.token(hooked.app, ann, world.issue_id)}"
    for _ in range(2):
        r = await hooked.post(one_click, data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 200
    assert await outbox.new() == [("subscriber.unsubscribed", a | {"list": "news"})]
    r = await hooked.post(one_click, data={"everything": "1"})
    assert await outbox.new() == [("subscriber.unsubscribed", a | {"list": "offers"})]


async def _import(client: AppClient, slug: str, csv: str) -> dict[str, Any]:
    r = await client.post(
        f"/api/v1/subscribers/import?list={slug}",
        content=csv.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_import_announces_each_person_once(hooked: AppClient) -> None:
    await make_list(hooked, "news")
    await make_list(hooked, "other")
    carol = await _add(hooked, "carol@example.org", lists=["news"], subscription_status="pending")
    dave = await _add(hooked, "dave@example.org", lists=["news"])
    assert await _patch(hooked, dave, "news", "unsubscribed") == 200
    erin = await _add(hooked, "erin@example.org", lists=["other"])
    outbox = Outbox(hooked)
    await outbox.new()
    csv = "email,name\nann@example.org,Ann\ncarol@example.org,\ndave@example.org,\n"
    csv += "erin@example.org,\n"
    result = await _import(hooked, "news", csv)
    assert (result["created"], result["updated"], result["skipped"]) == (1, 2, 1)
    fresh = await outbox.new()
    created = [d for t, d in fresh if t == "subscriber.created"]
    assert created == [_person(created[0]["id"], "ann@example.org", "Ann")]
    confirmed = sorted((d["email"], d["id"], d["list"]) for t, d in fresh
                       if t == "subscriber.confirmed")  # fmt: skip
    assert confirmed == [("ann@example.org", created[0]["id"], "news"),
                         ("carol@example.org", carol, "news"),
                         ("erin@example.org", erin, "news")]  # fmt: skip
    assert len(fresh) == 4  # dave left the list: skipped, and nothing said about him
    assert (await _import(hooked, "news", csv))["created"] == 0
    assert await outbox.new() == []  # re-importing changes nothing, so says nothing


async def test_a_large_import_writes_one_event_per_person_in_every_batch(
    hooked: AppClient,
) -> None:
    await make_list(hooked, "news")
    rows = 12_000  # three batches of the importer's 5,000
    csv = "email\n" + "".join(f"p{i}@example.org\n" for i in range(rows))
    assert (await _import(hooked, "news", csv))["created"] == rows
    fresh = await _events(hooked)
    kinds = [t for t, _ in fresh]
    assert kinds.count("subscriber.created") == kinds.count("subscriber.confirmed") == rows
    async with hooked.app.state.sessionmaker() as s:
        ids = set(await s.scalars(select(WebhookEvent.id)))
    assert len(ids) == 2 * rows and all(i.startswith("msg_") and len(i) == 36 for i in ids)
    emails = {d["email"] for t, d in fresh if t == "subscriber.confirmed"}
    assert len(emails) == rows and {d["list"] for t, d in fresh if "list" in d} == {"news"}


async def test_an_imported_confirmation_is_delivered_signed(app_factory: Any) -> None:
    client: AppClient = await app_factory(webhook_allow_private=True)
    await make_list(client, "news")
    with serve() as receiver:
        hook = await register(client, receiver.url, ["subscriber.confirmed"])
        await _import(client, "news", "email,name\nzoe@example.org,Zoe\n")
        async with running_sender(client):
            await eventually(lambda: receiver.delivered())
    (call,) = receiver.delivered()
    body = Verifier(hook["secret"]).verify(call.body, call.headers)
    assert body["type"] == "subscriber.confirmed"
    assert body["data"] == {"id": body["data"]["id"], "email": "zoe@example.org",
                            "name": "Zoe", "list": "news"}  # fmt: skip
    assert call.headers["webhook-id"].startswith("msg_")
