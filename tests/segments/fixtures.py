"""One set of people for every segment test: the same rows on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from app.db import utcnow
from app.models import MESSAGES_ISSUE, Bounce, Delivery, Subscriber
from tests.conftest import AppClient
from tests.issues.factory import make_list, make_subscriber

# An issue id no test creates (deliveries carry no foreign key): its log is seeded below.
SENT_ISSUE = 9001

# email: (attributes, {list: status}, name)
PEOPLE: dict[str, tuple[dict[str, Any], dict[str, str], str | None]] = {
    "ann@example.org": (
        {"plan": "pro", "age": 34, "vip": True, "tags": ["ai", "go"], "city": "Berlin"},
        {"news": "confirmed", "deals": "confirmed"},
        "Ann Archer",
    ),
    "bob@example.org": (
        {"plan": "free", "age": 19, "vip": False, "tags": ["go"], "city": "bern"},
        {"news": "confirmed"},
        "Bob",
    ),
    "cy@example.org": (
        {"plan": "Pro", "age": "34", "score": 2.5, "tags": "ai, ml"},
        {"news": "pending", "deals": "unsubscribed"},
        None,
    ),
    "dee@example.org": (
        {"age": 70, "score": 10, "tags": [1, 2], "note": None},
        {"deals": "confirmed"},
        "Dee 100% _real_",
    ),
    "eve@example.org": ({}, {}, ""),
}


async def seed(client: AppClient) -> dict[str, int]:
    """The people above, two lists, bounces (ann hard 3 days ago, bob soft 40 days ago) and
    deliveries: issue SENT_ISSUE sent to ann 3 days ago and bob 40 days ago, failed for cy;
    a transactional message sent to dee (no issue)."""
    await make_list(client, "news")
    await make_list(client, "deals")
    ids = {}
    for email, (attributes, lists, _) in PEOPLE.items():
        ids[email] = await make_subscriber(client, email, lists=lists, attributes=attributes)
    async with client.app.state.sessionmaker() as session:
        for month, (email, (_, _, name)) in enumerate(PEOPLE.items(), start=1):
            sub = await session.get(Subscriber, ids[email])
            assert sub is not None
            sub.name = name
            sub.created_at = datetime(2026, month, 1, tzinfo=UTC)
        now = utcnow()
        bounces = [
            ("ann@example.org", "hard", True, 3),
            ("bob@example.org", "soft", True, 40),
            ("cy@example.org", "hard", False, 1),  # sender-side: does not count
            ("dee@example.org", "complaint", True, 1),
        ]
        for n, (email, kind, counts, days) in enumerate(bounces):
            session.add(
                Bounce(
                    event_key=f"k{n}",
                    email=email,
                    subscriber_id=ids[email],
                    type=kind,
                    source="api",
                    counts=counts,
                    created_at=now - timedelta(days=days),
                )
            )
        deliveries = [
            ("ann@example.org", SENT_ISSUE, "sent", 3),
            ("bob@example.org", SENT_ISSUE, "sent", 40),
            ("cy@example.org", SENT_ISSUE, "failed", 1),
            ("dee@example.org", MESSAGES_ISSUE, "sent", 1),
        ]
        for email, issue_id, status, days in deliveries:
            session.add(Delivery(issue_id=issue_id, subscriber_id=ids[email], status=status,
                                 sent_at=now - timedelta(days=days)))  # fmt: skip
        await session.commit()
    return ids
