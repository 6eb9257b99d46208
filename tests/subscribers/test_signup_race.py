"""Two sign-ups of one new address at the same moment, in two transactions (two server
processes, or the group commit beside the ordinary route): one person, one
subscriber.created, one membership move, though each read before the other wrote."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.db import on_postgresql
from app.models import Subscriber, Subscription
from app.subscribers.signup import SignUp, ask, subscribe_many
from tests.conftest import AppClient
from tests.subscribers.helpers import make_list
from tests.webhooks.helpers import count_events, register

pytestmark = pytest.mark.asyncio

EVENTS = ["subscriber.created", "subscriber.confirmed"]


async def _blocked(client: AppClient, within: float = 10.0) -> None:
    """Until some backend of this database waits for a lock (the second upsert). SQLite
    shows no waiter: there the second write waits on its busy timeout, given a moment."""
    if not on_postgresql(client.app.state.engine):
        await asyncio.sleep(0.3)
        return
    async with client.app.state.engine.connect() as watch:
        for _ in range(int(within / 0.02)):
            waiting = await watch.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            ))  # fmt: skip
            if waiting:
                return
            await asyncio.sleep(0.02)
    raise AssertionError("the second sign-up never waited for the first")


@pytest.mark.parametrize("double_opt_in", [False, True])
async def test_one_new_address_twice_at_once(app_factory: Any, double_opt_in: bool) -> None:
    client: AppClient = await app_factory(webhook_allow_private=True)
    await register(client, "http://127.0.0.1:9/hook", EVENTS)
    await make_list(client, "news", double_opt_in=double_opt_in)
    engine = client.app.state.engine

    def one() -> Any:
        return ask("Race@Example.org", "Ria", ["news"], {}, check_deliverability=False)

    async def second(conn: Any) -> list[Any]:
        async with conn.begin():
            return await subscribe_many(conn, [one()])

    async with engine.connect() as first, engine.connect() as other:
        began = await first.begin()
        ours = await subscribe_many(first, [one()])
        # The second reads before the first commits (it sees nobody), then its upsert
        # waits on the first's row; the first commits while it waits.
        theirs = asyncio.create_task(second(other))
        await _blocked(client)
        await began.commit()
        outcomes = [*ours, *await asyncio.wait_for(theirs, 10)]
    assert all(isinstance(o, SignUp) for o in outcomes), outcomes
    async with client.app.state.sessionmaker() as s:
        people = await s.scalar(select(func.count()).select_from(Subscriber))
        rows = (await s.execute(select(Subscription.status))).scalars().all()
    assert people == 1
    assert rows == ["pending" if double_opt_in else "confirmed"]
    assert await count_events(client, "subscriber.created") == 1
    # Confirmed at once on a single opt-in list: one subscriber.confirmed, not one each.
    assert await count_events(client, "subscriber.confirmed") == (0 if double_opt_in else 1)
    # Each answer still asks for what a sign-up of that kind needs: a confirmation email
    # for a double opt-in list (again, as when she lost the first link), none otherwise.
    assert {o.status for o in outcomes} == {"pending" if double_opt_in else "confirmed"}


async def test_one_sign_up_alone_is_created_once_and_a_second_is_not(app_factory: Any) -> None:
    """The other side of the race check: a person this batch inserted is new (one
    subscriber.created), and the same address again later is known (none more)."""
    client: AppClient = await app_factory(webhook_allow_private=True)
    await register(client, "http://127.0.0.1:9/hook", EVENTS)
    await make_list(client, "news", double_opt_in=False)
    for attempt in range(2):
        r = await client.post(
            "/api/v1/subscribe", json={"email": "solo@example.org", "lists": ["news"]}
        )
        assert r.status_code in (200, 201, 202), r.text
        assert await count_events(client, "subscriber.created") == 1, attempt
        assert await count_events(client, "subscriber.confirmed") == 1, attempt
