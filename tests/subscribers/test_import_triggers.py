"""An import confirms people as a confirm does, so it enrols them in the list's active
triggered issues: one queued delivery each, due at confirmed_at + after_seconds, through
the API and through `tidings import`, on both databases."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.models import Delivery, MailingList, Subscriber, Subscription
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_subscriber
from tests.subscribers.helpers import make_list
from tests.subscribers.test_cli_import import tidings


async def _triggered(client: AppClient, slug: str, after: int, *, active: bool = True) -> int:
    issue = await make_issue(client, lists=[slug], trigger={"list": slug, "after_seconds": after})
    if active:
        r = await client.post(f"/api/v1/issues/{issue['id']}/activate")
        assert r.status_code == 200, r.text
    return int(issue["id"])


async def _import(client: AppClient, slug: str, csv: str) -> dict[str, Any]:
    r = await client.post(f"/api/v1/subscribers/import?list={slug}", content=csv.encode(),
                          headers={"Content-Type": "text/csv"})  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _enrolled(client: AppClient, issue_id: int) -> dict[str, timedelta]:
    """{email: next_attempt_at - confirmed_at} of the issue's deliveries."""
    async with client.app.state.sessionmaker() as s:
        rows = await s.execute(
            select(Subscriber.email, Delivery.status, Delivery.next_attempt_at,
                   Subscription.confirmed_at)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .join(MailingList, MailingList.id == Subscription.list_id)
            .where(Delivery.issue_id == issue_id, MailingList.slug == "news")
        )  # fmt: skip
        out = {}
        for email, status, due, confirmed_at in rows:
            assert status == "queued"
            out[email] = due - confirmed_at
        return out


async def _recipients(client: AppClient, issue_id: int) -> int:
    return int((await client.get(f"/api/v1/issues/{issue_id}/stats")).json()["recipients"])


async def test_api_import_enrols_who_it_confirms(client: AppClient) -> None:
    await make_list(client, "news")
    await make_list(client, "other")
    await make_subscriber(client, "pending@example.org", lists={"news": "pending"})
    await make_subscriber(client, "left@example.org", lists={"news": "unsubscribed"})
    await make_subscriber(client, "blocked@example.org", status="blocklisted")
    await make_subscriber(client, "member@example.org", lists={"news": "confirmed"})
    welcome = await _triggered(client, "news", 0)  # from now on, as the contract says
    drip = await _triggered(client, "news", 3600)
    draft = await _triggered(client, "news", 0, active=False)
    elsewhere = await _triggered(client, "other", 0)
    emails = ["new@example.org", "pending@example.org", "left@example.org",
              "blocked@example.org", "member@example.org"]  # fmt: skip
    csv = "email\n" + "\n".join(emails) + "\n"
    result = await _import(client, "news", csv)
    assert (result["created"], result["updated"], result["skipped"]) == (1, 1, 3)
    confirmed_now = {"new@example.org", "pending@example.org"}
    assert await _enrolled(client, welcome) == dict.fromkeys(confirmed_now, timedelta(0))
    assert await _enrolled(client, drip) == dict.fromkeys(confirmed_now, timedelta(hours=1))
    assert await _enrolled(client, draft) == {} and await _enrolled(client, elsewhere) == {}
    assert (await _recipients(client, welcome), await _recipients(client, drip)) == (2, 2)
    # Importing the same file again confirms no one, so enrols no one twice.
    assert (await _import(client, "news", csv))["created"] == 0
    assert len(await _enrolled(client, welcome)) == 2 and await _recipients(client, welcome) == 2


async def test_a_large_import_enrols_every_batch(client: AppClient) -> None:
    await make_list(client, "news")
    welcome = await _triggered(client, "news", 5)
    rows = 11_000  # three batches of the importer's 5,000
    csv = "email\n" + "".join(f"p{i}@example.org\n" for i in range(rows))
    assert (await _import(client, "news", csv))["created"] == rows
    enrolled = await _enrolled(client, welcome)
    assert len(enrolled) == rows and set(enrolled.values()) == {timedelta(seconds=5)}
    assert await _recipients(client, welcome) == rows


async def test_cli_import_enrols_too(client: AppClient, db: str, tmp_path: Path) -> None:
    await make_list(client, "news")
    welcome = await _triggered(client, "news", 60)
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name\ncli@example.org,Cli\n")
    code, out = await tidings(db, tmp_path, "import", str(csv_file), "--list", "news")
    assert code == 0 and "created 1" in out, out
    assert await _enrolled(client, welcome) == {"cli@example.org": timedelta(seconds=60)}
