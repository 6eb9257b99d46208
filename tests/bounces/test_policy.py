"""record_bounce: one path for every source, its policy and its idempotence, on both backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select

from app import tokens
from app.bounces.dsn import BounceEvent
from app.bounces.policy import record_bounce
from app.db import utcnow
from app.models import Bounce
from tests.subscribers import factory

ANN = "ann@example.org"


async def record(app, event: BounceEvent, source: str = "test", **kw):
    async with app.state.sessionmaker() as session:
        bounce = await record_bounce(
            session=session, settings=app.state.settings, event=event, source=source, **kw
        )
        await session.commit()
        return bounce


async def count_bounces(app) -> int:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(func.count(Bounce.id)))).scalar_one()


def soft(key: str, **kw) -> BounceEvent:
    return BounceEvent(type="soft", email=ANN, status="4.2.2", event_key=key, **kw)


async def test_hard_bounce_by_verp_blocklists_and_marks_the_delivery(client) -> None:
    world = await factory.build(client.app)
    delivery_id = world.deliveries[ANN]
    verp = tokens.make(client.app.state.settings.secret_key_value, "verp", delivery_id)
    # The report names no one readable: the VERP token alone identifies the delivery.
    event = BounceEvent(type="hard", email=None, status="5.1.1", verp_token=verp, event_key="k1")
    bounce = await record(client.app, event)
    assert bounce is not None
    assert (bounce.delivery_id, bounce.issue_id) == (delivery_id, world.issue_id)
    assert bounce.subscriber_id == world.subscribers[ANN] and bounce.email == ANN
    sub = await factory.subscriber(client.app, world.subscribers[ANN])
    assert (sub.status, sub.blocklist_reason) == ("blocklisted", "hard_bounce")
    assert (await factory.delivery(client.app, delivery_id)).status == "bounced"
    other = await factory.subscriber(client.app, world.subscribers["bob@example.org"])
    assert other.status == "active"


async def test_forged_verp_token_falls_back_to_the_address(client) -> None:
    world = await factory.build(client.app)
    event = BounceEvent(type="hard", email="BOB@example.org", verp_token="aaaa", event_key="k")
    bounce = await record(client.app, event)
    assert bounce is not None and bounce.delivery_id is None
    assert bounce.subscriber_id == world.subscribers["bob@example.org"]


async def test_a_message_id_that_is_not_ours_names_no_delivery(client) -> None:
    world = await factory.build(client.app)
    # The factory stored this Message-ID on Ann's delivery, but it carries no MAC of ours:
    # anyone can write it into a fake report, so it must not pin a bounce on her.
    event = BounceEvent(
        type="hard", email=None, message_id=f"<d{world.subscribers[ANN]}.test@example.com>",
        event_key="mid",
    )  # fmt: skip
    bounce = await record(client.app, event)
    assert bounce is not None and bounce.delivery_id is None and bounce.subscriber_id is None
    sub = await factory.subscriber(client.app, world.subscribers[ANN])
    assert sub.status == "active"


async def test_same_event_twice_is_one_bounce(client) -> None:
    await factory.build(client.app)
    assert await record(client.app, soft("same")) is not None
    assert await record(client.app, soft("same")) is None
    assert await count_bounces(client.app) == 1


async def test_concurrent_replays_record_one(client) -> None:
    await factory.build(client.app)
    results = await asyncio.gather(*(record(client.app, soft("race")) for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    assert await count_bounces(client.app) == 1


async def test_soft_bounces_blocklist_at_the_limit(client) -> None:
    world = await factory.build(client.app)
    sid = world.subscribers[ANN]
    await record(client.app, soft("s1"))
    await record(client.app, soft("s2"))
    assert (await factory.subscriber(client.app, sid)).status == "active"
    assert (await factory.delivery(client.app, world.deliveries[ANN])).status == "sent"
    await record(client.app, soft("s3"))
    sub = await factory.subscriber(client.app, sid)
    assert (sub.status, sub.blocklist_reason) == ("blocklisted", "soft_bounce")


async def test_old_soft_bounces_do_not_count(client) -> None:
    world = await factory.build(client.app)
    old = utcnow() - timedelta(days=31)
    await record(client.app, soft("old1", occurred_at=old))
    await record(client.app, soft("old2", occurred_at=old))
    await record(client.app, soft("new1"))
    await record(client.app, soft("new2"))
    assert (await factory.subscriber(client.app, world.subscribers[ANN])).status == "active"


async def test_sender_side_failures_count_against_no_one(client) -> None:
    world = await factory.build(client.app)
    for i in range(4):
        await record(client.app, soft(f"p{i}", counts=False))
    policy = BounceEvent(type="hard", email=ANN, status="5.7.1", counts=False, event_key="h")
    await record(client.app, policy, delivery_id=world.deliveries[ANN])
    assert (await factory.subscriber(client.app, world.subscribers[ANN])).status == "active"
    assert await count_bounces(client.app) == 5


async def test_complaint_blocklists_and_unsubscribes_everywhere(client) -> None:
    world = await factory.build(client.app)
    event = BounceEvent(type="complaint", email=None, event_key="c")
    bounce = await record(client.app, event, delivery_id=world.deliveries[ANN])
    assert bounce is not None and bounce.type == "complaint"
    sid = world.subscribers[ANN]
    sub = await factory.subscriber(client.app, sid)
    assert (sub.status, sub.blocklist_reason) == ("blocklisted", "complaint")
    assert await factory.statuses(client.app, sid) == {
        "news": "unsubscribed",
        "offers": "unsubscribed",
    }
    assert (await factory.delivery(client.app, world.deliveries[ANN])).status == "complained"


async def test_provider_unsubscribe_leaves_the_issues_lists(client) -> None:
    world = await factory.build(client.app)
    event = BounceEvent(type="unsubscribe", email=ANN, event_key="u")
    await record(client.app, event, delivery_id=world.deliveries[ANN])
    sid = world.subscribers[ANN]
    assert await factory.statuses(client.app, sid) == {
        "news": "unsubscribed",
        "offers": "confirmed",
    }
    assert (await factory.subscriber(client.app, sid)).status == "active"


async def test_nothing_lifts_a_blocklist(client) -> None:
    world = await factory.build(client.app)
    await record(client.app, BounceEvent(type="complaint", email=ANN, event_key="c"))
    await record(client.app, BounceEvent(type="hard", email=ANN, status="5.1.1", event_key="h"))
    await record(client.app, soft("s", counts=False))
    sub = await factory.subscriber(client.app, world.subscribers[ANN])
    assert (sub.status, sub.blocklist_reason) == ("blocklisted", "complaint")


async def test_bounce_for_an_unknown_address_is_recorded_alone(client) -> None:
    await factory.build(client.app)
    bounce = await record(
        client.app, BounceEvent(type="hard", email="x@nowhere.test", event_key="n")
    )
    assert bounce is not None and bounce.subscriber_id is None and bounce.email == "x@nowhere.test"


async def test_our_own_message_id_names_the_delivery(client) -> None:
    from app.issues.compose import message_id

    world = await factory.build(client.app)
    delivery_id = world.deliveries["bob@example.org"]
    mid = message_id(client.app.state.settings, issue_id=world.issue_id, delivery_id=delivery_id)
    # A redacted complaint quotes only the original's Message-ID.
    bounce = await record(client.app, BounceEvent(type="complaint", email=None, message_id=mid,
                                                  event_key="arf"))  # fmt: skip
    assert bounce is not None and bounce.delivery_id == delivery_id
    sub = await factory.subscriber(client.app, world.subscribers["bob@example.org"])
    assert sub.blocklist_reason == "complaint"
