"""Rows written straight into the test's database, so a scenario needs no other API to exist."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy import select

from app.db import utcnow
from app.models import Subscriber, Subscription
from tests.conftest import AppClient
from tests.conftest import make_list as shared_make_list

# The one list helper, making public single opt-in lists unless told otherwise.
make_list = partial(shared_make_list, double_opt_in=False)


async def make_subscriber(
    client: AppClient,
    email: str,
    *,
    name: str = "",
    lists: dict[int, str] | None = None,
    attributes: dict[str, Any] | None = None,
) -> int:
    """A subscriber with the given {list_id: status} memberships; returns its id."""
    async with client.app.state.sessionmaker() as session:
        sub = Subscriber(
            email=email, email_key=email.lower(), name=name, attributes=attributes or {}
        )
        session.add(sub)
        await session.flush()
        for list_id, status in (lists or {}).items():
            confirmed = utcnow() if status == "confirmed" else None
            session.add(
                Subscription(
                    subscriber_id=sub.id, list_id=list_id, status=status, confirmed_at=confirmed
                )
            )
        await session.commit()
        return sub.id


async def memberships(client: AppClient, subscriber_id: int) -> dict[int, str]:
    """{list_id: status} of one subscriber, read from the database."""
    async with client.app.state.sessionmaker() as session:
        rows = await session.execute(
            select(Subscription.list_id, Subscription.status).where(
                Subscription.subscriber_id == subscriber_id
            )
        )
        return dict(rows.tuples().all())


async def subscriber_row(client: AppClient, subscriber_id: int) -> Subscriber | None:
    async with client.app.state.sessionmaker() as session:
        return await session.get(Subscriber, subscriber_id)
