"""The API additions behind the audience console: a person's history and the CSV export."""

from __future__ import annotations

import csv
import io

from app.models import Bounce, Delivery, Issue
from tests.conftest import AppClient
from tests.subscribers.helpers import add, make_list


async def test_history_lists_deliveries_and_bounces_newest_first(client: AppClient) -> None:
    await make_list(client, "news")
    ann = await add(client, "ann@example.org", name="Ann", lists=["news"])
    other = await add(client, "bob@example.org")
    async with client.app.state.sessionmaker() as session:
        first = Issue(subject="First", body="x", status="sent")
        second = Issue(subject="Second", body="x", status="sent")
        session.add_all([first, second])
        await session.flush()
        session.add_all(
            [
                Delivery(issue_id=first.id, subscriber_id=ann["id"], status="sent"),
                Delivery(issue_id=second.id, subscriber_id=ann["id"], status="bounced"),
                Delivery(issue_id=second.id, subscriber_id=other["id"], status="sent"),
            ]
        )
        session.add(
            Bounce(event_key="k1", email="ann@example.org", subscriber_id=ann["id"],
                   issue_id=second.id, type="soft", source="api", diagnostic="mailbox full")
        )  # fmt: skip
        await session.commit()
    response = await client.get(f"/api/v1/subscribers/{ann['id']}/history")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(d["issue_subject"], d["status"]) for d in body["deliveries"]] == [
        ("Second", "bounced"),
        ("First", "sent"),
    ]
    assert [(b["type"], b["diagnostic"]) for b in body["bounces"]] == [("soft", "mailbox full")]
    assert (await client.get("/api/v1/subscribers/999999/history")).status_code == 404


async def test_export_streams_the_filtered_table(client: AppClient, anon: AppClient) -> None:
    await make_list(client, "news")
    await add(client, "ann@example.org", name="=HYPERLINK(1)", lists=["news"],
              attributes={"city": "Oslo"})  # fmt: skip
    await add(client, "bob@example.org", name="Bob")
    await add(client, "cy@example.org", name="Cy", lists=["news"], subscription_status="pending")
    response = await client.get("/api/v1/exports/subscribers.csv?list=news&status=confirmed")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "subscribers-news.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["email"] for r in rows] == ["ann@example.org"]
    assert rows[0]["name"] == "'=HYPERLINK(1)"  # a spreadsheet shows it, never runs it
    assert rows[0]["lists"] == "news:confirmed"
    assert '"city": "Oslo"' in rows[0]["attributes"]
    everyone = await client.get("/api/v1/exports/subscribers.csv")
    assert len(list(csv.DictReader(io.StringIO(everyone.text)))) == 3
    unknown = await client.get("/api/v1/exports/subscribers.csv?list=nope")
    assert unknown.status_code == 404
    mismatched = await client.get("/api/v1/exports/subscribers.csv?status=pending")
    assert mismatched.status_code == 422
    assert (await anon.get("/api/v1/exports/subscribers.csv")).status_code == 401


async def test_export_walks_many_pages(client: AppClient, monkeypatch: object) -> None:
    from app.subscribers import export

    await make_list(client, "news")
    for i in range(7):
        await add(client, f"p{i}@example.org", lists=["news"])
    monkeypatch.setattr(export, "PAGE_ROWS", 3)  # type: ignore[attr-defined]
    response = await client.get("/api/v1/exports/subscribers.csv?list=news")
    emails = [r["email"] for r in csv.DictReader(io.StringIO(response.text))]
    assert emails == [f"p{i}@example.org" for i in range(7)]
