"""Admin subscribers API: create, search, filters, update, erase, export."""

from __future__ import annotations

from sqlalchemy import insert, select

from app.db import make_engine, utcnow
from app.models import Bounce, Delivery, Issue, Suppression
from app.subscribers.addresses import suppression_hash
from tests.conftest import AppClient
from tests.smtp import SMTPServer
from tests.subscribers.helpers import add, confirm_token, make_list


async def test_create_normalises_and_refuses_duplicates(client: AppClient) -> None:
    await make_list(client, "news")
    created = await add(client, "Ann.Example@EXAMPLE.com", name="Ann", lists=["news"])
    assert created["email"] == "Ann.Example@example.com"
    assert created["status"] == "active" and created["blocklist_reason"] is None
    assert created["lists"] == [{"slug": "news", "status": "confirmed"}]
    assert set(created) >= {"id", "email", "name", "attributes", "status", "lists", "created_at"}
    again = await client.post("/api/v1/subscribers", json={"email": "ann.example@example.COM"})
    assert again.status_code == 409
    assert str(created["id"]) in again.json()["detail"]


async def test_bad_subscriber_input_is_422_and_writes_nothing(client: AppClient) -> None:
    await make_list(client, "news")
    for body in (
        {"email": "not-an-address"},
        {"email": "a@example.com", "lists": ["nope"]},
        {"email": "a@example.com", "lists": "news"},
        {"email": "a@example.com", "attributes": ["x"]},
        {"email": "a@example.com", "subscription_status": "unsubscribed"},
        {"email": "a@example.com\r\nBcc: x@example.com"},
        {"name": "no email"},
    ):
        response = await client.post("/api/v1/subscribers", json=body)
        assert response.status_code == 422, (body, response.text)
        assert "detail" in response.json()
    unknown = await client.post(
        "/api/v1/subscribers", json={"email": "a@example.com", "lists": ["nope"]}
    )
    assert "nope" in str(unknown.json()["detail"])
    assert (await client.get("/api/v1/subscribers")).json()["items"] == []
    assert (await client.get("/api/v1/subscribers/999999999999999999999")).status_code == 422


async def test_pending_admin_addition_sends_confirmation(
    client: AppClient, smtpd: SMTPServer
) -> None:
    await make_list(client, "news")
    created = await add(client, "p@example.com", lists=["news"], subscription_status="pending")
    assert created["lists"] == [{"slug": "news", "status": "pending"}]
    token = confirm_token(smtpd, "p@example.com")
    assert (await client.post(f"/subscribe/confirm/{token}")).status_code == 200
    got = (await client.get(f"/api/v1/subscribers/{created['id']}")).json()
    assert got["lists"] == [{"slug": "news", "status": "confirmed"}]


async def test_search_filter_and_paginate(client: AppClient) -> None:
    await make_list(client, "news")
    await make_list(client, "other")
    await add(client, "alice@example.com", name="Alice Liddell", lists=["news"])
    bob = await add(
        client, "bob@example.org", name="Bob", lists=["news"], subscription_status="pending"
    )
    carol = await add(client, "carol@example.com", name="Carol 100%_sure", lists=["other"])
    await client.patch(f"/api/v1/subscribers/{carol['id']}", json={"status": "blocklisted"})

    async def emails(**params: object) -> list[str]:
        response = await client.get("/api/v1/subscribers", params=params)
        assert response.status_code == 200, response.text
        return [s["email"] for s in response.json()["items"]]

    assert await emails(q="LIDDELL") == ["alice@example.com"]
    assert await emails(q="example.org") == ["bob@example.org"]
    assert await emails(q="100%_") == ["carol@example.com"]
    assert await emails(q="%") == ["carol@example.com"]  # a literal percent, not a wildcard
    assert await emails(list="news") == ["alice@example.com", "bob@example.org"]
    assert await emails(list="news", status="pending") == ["bob@example.org"]
    assert await emails(status="blocklisted") == ["carol@example.com"]
    assert await emails(status="active") == ["alice@example.com", "bob@example.org"]
    assert (
        await client.get("/api/v1/subscribers", params={"status": "pending"})
    ).status_code == 422
    assert (await client.get("/api/v1/subscribers", params={"list": "nope"})).status_code == 404

    first = (await client.get("/api/v1/subscribers", params={"limit": 2})).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = (
        await client.get("/api/v1/subscribers", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [s["id"] for s in second["items"]] == [carol["id"]] and second["next_cursor"] is None
    assert bob["id"] in [s["id"] for s in first["items"]]


async def test_patch_subscriber(client: AppClient) -> None:
    await make_list(client, "news")
    await make_list(client, "other")
    sub = await add(client, "x@example.com", name="X", attributes={"a": 1, "b": 2}, lists=["news"])
    url = f"/api/v1/subscribers/{sub['id']}"
    changed = await client.patch(
        url,
        json={
            "name": "Xavier",
            "attributes": {"c": 3},
            "lists": [
                {"slug": "news", "status": "unsubscribed"},
                {"slug": "other", "status": "confirmed"},
            ],
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "Xavier" and body["attributes"] == {"c": 3}
    assert body["lists"] == [
        {"slug": "news", "status": "unsubscribed"},
        {"slug": "other", "status": "confirmed"},
    ]
    blocked = (await client.patch(url, json={"status": "blocklisted"})).json()
    assert blocked["status"] == "blocklisted" and blocked["blocklist_reason"] == "manual"
    active = (await client.patch(url, json={"status": "active"})).json()
    assert active["status"] == "active" and active["blocklist_reason"] is None
    assert (await client.patch(url, json={"blocklist_reason": "manual"})).status_code == 422
    assert (await client.patch(url, json={"status": "gone"})).status_code == 422
    assert (
        await client.patch(url, json={"lists": [{"slug": "nope", "status": "confirmed"}]})
    ).status_code == 422
    assert (await client.patch("/api/v1/subscribers/424242", json={"name": "y"})).status_code == 404


async def test_erase_keeps_only_a_hash(client: AppClient, db: str) -> None:
    await make_list(client, "news")
    sub = await add(client, "gone@example.com", name="Gone", lists=["news"])
    engine = make_engine(db)
    async with engine.begin() as conn:
        issue_id = (
            await conn.execute(
                insert(Issue).values(subject="Hello", body="x", status="sent").returning(Issue.id)
            )
        ).scalar_one()
        delivery_id = (
            await conn.execute(
                insert(Delivery)
                .values(issue_id=issue_id, subscriber_id=sub["id"], status="sent", sent_at=utcnow())
                .returning(Delivery.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(Bounce).values(
                event_key="k1",
                email="gone@example.com",
                subscriber_id=sub["id"],
                delivery_id=delivery_id,
                issue_id=issue_id,
                type="soft",
                source="api",
                diagnostic="mailbox gone@example.com full",
            )
        )
    export = (await client.get(f"/api/v1/subscribers/{sub['id']}/export")).json()
    assert export["subscriber"]["email"] == "gone@example.com"
    assert (
        export["subscriptions"][0]["slug"] == "news" and export["subscriptions"][0]["confirmed_at"]
    )
    assert export["deliveries"] == [
        {
            "issue_id": issue_id,
            "issue_subject": "Hello",
            "status": "sent",
            "attempts": 0,
            "message_id": None,
            "sent_at": export["deliveries"][0]["sent_at"],
            "unsubscribed_at": None,
        }
    ]
    assert export["bounces"][0]["type"] == "soft"

    assert (await client.delete(f"/api/v1/subscribers/{sub['id']}")).status_code == 204
    assert (await client.get(f"/api/v1/subscribers/{sub['id']}")).status_code == 404
    assert (await client.delete(f"/api/v1/subscribers/{sub['id']}")).status_code == 404
    async with engine.connect() as conn:
        hashes = (await conn.execute(select(Suppression.email_hash, Suppression.reason))).all()
        bounce = (
            await conn.execute(select(Bounce.email, Bounce.diagnostic, Bounce.subscriber_id))
        ).one()
        delivery = (await conn.execute(select(Delivery.subscriber_id))).one()
    await engine.dispose()
    assert hashes == [(suppression_hash("gone@example.com"), "erased")]
    assert tuple(bounce) == (None, None, None)
    assert delivery.subscriber_id is None
    # No admin addition brings the address back.
    again = await client.post("/api/v1/subscribers", json={"email": "GONE@example.com"})
    assert again.status_code == 409 and "suppression" in again.json()["detail"]


async def test_subscribers_need_admin(anon: AppClient) -> None:
    assert (await anon.get("/api/v1/subscribers")).status_code == 401
    assert (await anon.get("/api/v1/subscribers/1/export")).status_code == 401
    assert (await anon.delete("/api/v1/subscribers/1")).status_code == 401
