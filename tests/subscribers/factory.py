"""Rows for unsubscribe and bounce tests, written straight into the test app's database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app import tokens
from app.models import Delivery, Issue, IssueList, MailingList, Subscriber, Subscription


@dataclass
class World:
    """Two lists, one issue sent to the first, and subscribers on both."""

    lists: dict[str, int]
    issue_id: int
    subscribers: dict[str, int]
    deliveries: dict[str, int]


async def build(
    app: Any, emails: tuple[str, ...] = ("ann@example.org", "bob@example.org")
) -> World:
    """Lists "news" and "offers", everyone confirmed on both; one issue to "news", delivered."""
    async with app.state.sessionmaker() as session:
        news = MailingList(slug="news", name="Weekly <News>", description="")
        offers = MailingList(slug="offers", name="Offers", description="")
        session.add_all([news, offers])
        await session.flush()
        issue = Issue(subject="Hello", body="Hi", status="sent", recipients=len(emails))
        session.add(issue)
        await session.flush()
        session.add(IssueList(issue_id=issue.id, list_id=news.id))
        subscribers: dict[str, int] = {}
        deliveries: dict[str, int] = {}
        for email in emails:
            sub = Subscriber(email=email, email_key=email.lower(), name=email.split("@")[0])
            session.add(sub)
            await session.flush()
            subscribers[email] = sub.id
            for ml in (news, offers):
                session.add(Subscription(subscriber_id=sub.id, list_id=ml.id, status="confirmed"))
            delivery = Delivery(
                issue_id=issue.id,
                subscriber_id=sub.id,
                status="sent",
                attempts=1,
                message_id=f"<d{sub.id}.test@example.com>",
            )
            session.add(delivery)
            await session.flush()
            deliveries[email] = delivery.id
        await session.commit()
        return World({"news": news.id, "offers": offers.id}, issue.id, subscribers, deliveries)


def token(app: Any, subscriber_id: int, issue_id: int) -> str:
    """The unsubscribe token the issue's emails carry."""
    return tokens.make(app.state.settings.secret_key_value, "unsubscribe", subscriber_id, issue_id)


async def statuses(app: Any, subscriber_id: int) -> dict[str, str]:
    """{list slug: subscription status} of one subscriber."""
    async with app.state.sessionmaker() as session:
        stmt = (
            select(MailingList.slug, Subscription.status)
            .join(Subscription, Subscription.list_id == MailingList.id)
            .where(Subscription.subscriber_id == subscriber_id)
        )
        return dict((await session.execute(stmt)).tuples().all())


async def subscriber(app: Any, subscriber_id: int) -> Subscriber:
    async with app.state.sessionmaker() as session:
        found = await session.get(Subscriber, subscriber_id)
        assert found is not None
        return found


async def delivery(app: Any, delivery_id: int) -> Delivery:
    async with app.state.sessionmaker() as session:
        found = await session.get(Delivery, delivery_id)
        assert found is not None
        return found
