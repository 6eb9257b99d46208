"""Lists, subscribers and issues for the issues API tests.

Lists and members are written straight into the test app's database (the lists API
belongs to another domain); issues are always made through the API under test.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from app.db import utcnow
from app.models import Delivery, Issue, MailingList, Subscriber, Subscription
from tests.conftest import AppClient, make_list  # noqa: F401 (the one list helper)

BODY = "# Hello {{ subscriber.name }}\n\nThe news of the week. [Read more](https://example.org/a)\n"


async def make_subscriber(
    client: AppClient,
    email: str,
    *,
    name: str = "",
    lists: dict[str, str] | None = None,
    status: str = "active",
    attributes: dict[str, Any] | None = None,
) -> int:
    """A subscriber with {list slug: subscription status} memberships."""
    async with client.app.state.sessionmaker() as session:
        sub = Subscriber(
            email=email,
            email_key=email.lower(),
            name=name,
            status=status,
            attributes=attributes or {},
        )
        session.add(sub)
        await session.flush()
        for slug, sub_status in (lists or {}).items():
            list_id = await session.scalar(select(MailingList.id).where(MailingList.slug == slug))
            session.add(Subscription(subscriber_id=sub.id, list_id=list_id, status=sub_status))
        await session.commit()
        return sub.id


async def make_issue(client: AppClient, **fields: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "subject": "Week 12",
        "lists": ["news"],
        "format": "markdown",
        "body": BODY,
    }
    payload.update(fields)
    response = await client.post("/api/v1/issues", json=payload)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def set_issue(client: AppClient, issue_id: int, **values: Any) -> None:
    """Force an issue's columns, as the dispatcher would (e.g. status="sent")."""
    async with client.app.state.sessionmaker() as session:
        await session.execute(update(Issue).where(Issue.id == issue_id).values(**values))
        await session.commit()


async def delivery_rows(client: AppClient, issue_id: int | None = None) -> int:
    async with client.app.state.sessionmaker() as session:
        query = select(func.count()).select_from(Delivery)
        if issue_id is not None:
            query = query.where(Delivery.issue_id == issue_id)
        return int(await session.scalar(query) or 0)


async def add_deliveries(client: AppClient, issue_id: int, rows: list[dict[str, Any]]) -> None:
    """Delivery rows as the dispatcher leaves them (status, sent_at, unsubscribed_at...)."""
    async with client.app.state.sessionmaker() as session:
        for row in rows:
            session.add(Delivery(issue_id=issue_id, **row))
        await session.commit()


def now() -> Any:
    return utcnow()
