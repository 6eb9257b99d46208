"""Starting a send, scheduling, the status machine, stats and the delivery log over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Delivery
from tests.conftest import AppClient
from tests.issues.factory import (
    add_deliveries,
    delivery_rows,
    make_issue,
    make_list,
    make_subscriber,
    set_issue,
)


@pytest.fixture
async def audience(client: AppClient) -> dict[str, int]:
    """news and offers; 3 real recipients of both, and 4 people who must not get anything."""
    await make_list(client, "news")
    await make_list(client, "offers")
    both = {"news": "confirmed", "offers": "confirmed"}
    return {
        "ann": await make_subscriber(client, "ann@example.org", lists=both),
        "bob": await make_subscriber(client, "bob@example.org", lists={"news": "confirmed"}),
        "cy": await make_subscriber(
            client, "cy@example.org", lists={"offers": "confirmed", "news": "unsubscribed"}
        ),
        "pending": await make_subscriber(client, "p@example.org", lists={"news": "pending"}),
        "gone": await make_subscriber(client, "g@example.org", lists={"news": "unsubscribed"}),
        "blocked": await make_subscriber(client, "x@example.org", lists=both, status="blocklisted"),
        "elsewhere": await make_subscriber(client, "e@example.org"),
    }


async def test_send_fixes_recipients_once_each(client: AppClient, audience: dict[str, int]) -> None:
    issue = await make_issue(client, lists=["news", "offers"])
    response = await client.post(f"/api/v1/issues/{issue['id']}/send")
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "sending", "recipients": 3}
    async with client.app.state.sessionmaker() as session:
        rows = (
            await session.scalars(
                select(Delivery.subscriber_id).where(Delivery.issue_id == issue["id"])
            )
        ).all()
    assert sorted(rows) == sorted([audience["ann"], audience["bob"], audience["cy"]])
    stored = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
    assert stored["status"] == "sending" and stored["recipients"] == 3
    assert stored["started_at"] is not None

    # Calling it again never sends twice, nor can a started issue be edited or deleted.
    again = await client.post(f"/api/v1/issues/{issue['id']}/send")
    assert again.status_code == 409
    assert await delivery_rows(client, issue["id"]) == 3
    url = f"/api/v1/issues/{issue['id']}"
    assert (await client.patch(url, json={"subject": "Changed"})).status_code == 409
    assert (await client.delete(url)).status_code == 409


async def test_two_concurrent_sends_exactly_one_wins(
    client: AppClient, audience: dict[str, int]
) -> None:
    issue = await make_issue(client, lists=["news", "offers"])
    url = f"/api/v1/issues/{issue['id']}/send"
    responses = await asyncio.gather(*(client.post(url) for _ in range(4)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202, 409, 409, 409], [r.text for r in responses]
    assert await delivery_rows(client, issue["id"]) == 3


async def test_send_to_lists_without_members(client: AppClient) -> None:
    await make_list(client, "news")
    issue = await make_issue(client)
    response = await client.post(f"/api/v1/issues/{issue['id']}/send")
    assert response.status_code == 202
    assert response.json() == {"status": "sending", "recipients": 0}


async def test_schedule_then_send_now(client: AppClient, audience: dict[str, int]) -> None:
    issue = await make_issue(client)
    url = f"/api/v1/issues/{issue['id']}"
    when = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    response = await client.post(f"{url}/send", json={"send_at": when.isoformat()})
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "scheduled", "recipients": 2}
    stored = (await client.get(url)).json()
    assert stored["status"] == "scheduled"
    assert datetime.fromisoformat(stored["send_at"]) == when
    assert await delivery_rows(client, issue["id"]) == 0  # fixed only when the send starts

    # Still editable, and re-schedulable, while scheduled.
    assert (await client.patch(url, json={"subject": "Later"})).status_code == 200
    later = when + timedelta(hours=1)
    moved = await client.post(f"{url}/send", json={"send_at": later.isoformat()})
    assert moved.json()["status"] == "scheduled"
    assert datetime.fromisoformat((await client.get(url)).json()["send_at"]) == later

    now = await client.post(f"{url}/send", json={})
    assert now.json() == {"status": "sending", "recipients": 2}
    assert await delivery_rows(client, issue["id"]) == 2


async def test_send_at_in_the_past_sends_now(client: AppClient, audience: dict[str, int]) -> None:
    issue = await make_issue(client)
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    response = await client.post(f"/api/v1/issues/{issue['id']}/send", json={"send_at": past})
    assert response.json() == {"status": "sending", "recipients": 2}


@pytest.mark.parametrize("send_at", ["2030-01-01T09:00:00", "tomorrow", 12])
async def test_send_at_needs_an_offset(
    client: AppClient, audience: dict[str, int], send_at: Any
) -> None:
    issue = await make_issue(client)
    response = await client.post(f"/api/v1/issues/{issue['id']}/send", json={"send_at": send_at})
    assert response.status_code == 422
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["status"] == "draft"


async def test_send_refuses_an_issue_that_no_longer_renders(
    client: AppClient, audience: dict[str, int]
) -> None:
    issue = await make_issue(client)
    await set_issue(client, issue["id"], body="{% for x in %}")  # broken behind the API's back
    response = await client.post(f"/api/v1/issues/{issue['id']}/send")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "body"]
    assert (await client.get(f"/api/v1/issues/{issue['id']}")).json()["status"] == "draft"
    assert await delivery_rows(client, issue["id"]) == 0


async def _issue_in(client: AppClient, status: str) -> int:
    """An issue brought to `status` the way a user (or the dispatcher, for "sent") would."""
    issue_id = (await make_issue(client))["id"]
    url = f"/api/v1/issues/{issue_id}"
    if status == "scheduled":
        soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert (await client.post(f"{url}/send", json={"send_at": soon})).status_code == 202
    elif status in ("sending", "paused"):
        assert (await client.post(f"{url}/send")).status_code == 202
        if status == "paused":
            assert (await client.post(f"{url}/pause")).status_code == 200
    elif status == "cancelled":
        assert (await client.post(f"{url}/cancel")).status_code == 200
    elif status == "sent":
        await set_issue(client, issue_id, status="sent")
    return issue_id


ALLOWED = {  # (from, action): the status it leads to; every other pair is a 409
    ("sending", "pause"): "paused",
    ("paused", "resume"): "sending",
    ("scheduled", "resume"): "scheduled",
    ("draft", "cancel"): "cancelled",
    ("scheduled", "cancel"): "cancelled",
    ("sending", "cancel"): "cancelled",
    ("paused", "cancel"): "cancelled",
}
STATUSES = ["draft", "scheduled", "sending", "paused", "sent", "cancelled"]


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
async def test_every_move_of_the_status_machine(
    client: AppClient, audience: dict[str, int], action: str
) -> None:
    for status in STATUSES:
        issue_id = await _issue_in(client, status)
        response = await client.post(f"/api/v1/issues/{issue_id}/{action}")
        expected = ALLOWED.get((status, action))
        if expected is None:
            assert response.status_code == 409, (status, action, response.text)
            assert status in response.json()["detail"]
            stored = (await client.get(f"/api/v1/issues/{issue_id}")).json()["status"]
            assert stored == status
        else:
            assert response.status_code == 200, (status, action, response.text)
            assert response.json()["status"] == expected
    assert (await client.post(f"/api/v1/issues/999999/{action}")).status_code == 404


@pytest.mark.parametrize("status", STATUSES)
async def test_send_edit_delete_only_before_sending(
    client: AppClient, audience: dict[str, int], status: str
) -> None:
    issue_id = await _issue_in(client, status)
    url = f"/api/v1/issues/{issue_id}"
    open_ = status in ("draft", "scheduled")
    assert (await client.patch(url, json={"preheader": "x"})).status_code == (200 if open_ else 409)
    assert (await client.post(f"{url}/send")).status_code == (202 if open_ else 409)
    if not open_:
        assert (await client.delete(url)).status_code == 409


async def test_cancel_drops_queued_deliveries(client: AppClient, audience: dict[str, int]) -> None:
    issue_id = await _issue_in(client, "paused")
    response = await client.post(f"/api/v1/issues/{issue_id}/cancel")
    assert response.status_code == 200
    assert response.json()["finished_at"] is not None
    log = (await client.get(f"/api/v1/issues/{issue_id}/deliveries")).json()["items"]
    assert [d["status"] for d in log] == ["cancelled", "cancelled"]


async def test_stats_count_by_outcome(client: AppClient, audience: dict[str, int]) -> None:
    issue = await make_issue(client)
    started = datetime.now(UTC) - timedelta(seconds=100)
    await set_issue(client, issue["id"], status="sent", started_at=started, recipients=9)
    sent_at = started + timedelta(seconds=50)
    rows: list[dict[str, Any]] = [
        {"status": "queued"},
        {"status": "sending"},
        {"status": "sent", "sent_at": sent_at},
        {"status": "sent", "sent_at": sent_at, "unsubscribed_at": sent_at},
        {"status": "sent", "sent_at": sent_at},
        {"status": "failed", "last_error": "550 no"},
        {"status": "bounced", "sent_at": sent_at},
        {"status": "complained", "sent_at": sent_at, "unsubscribed_at": sent_at},
        {"status": "skipped"},
    ]
    await add_deliveries(client, issue["id"], rows)
    stats = (await client.get(f"/api/v1/issues/{issue['id']}/stats")).json()
    assert stats == {
        "status": "sent",
        "recipients": 9,
        "queued": 2,
        "sent": 3,
        "failed": 1,
        "bounced": 1,
        "complained": 1,
        "unsubscribed": 2,
        "started_at": stats["started_at"],
        "finished_at": None,
        "messages_per_second": 0.1,  # 5 messages left in the 50 s up to the last one
        # Engagement (tests/engagement): no opens or clicks; rates over the 5 that left.
        **dict.fromkeys(("opens", "unique_opens", "clicks", "unique_clicks"), 0),
        "machine_opens": 0,
        "machine_clicks": 0,
        "machine_reasons": {"open": {}, "click": {}},
        "complaint_rate": 0.2,
        "bounce_rate": 0.2,
    }
    assert datetime.fromisoformat(stats["started_at"]) == started
    assert (await client.get("/api/v1/issues/999999/stats")).status_code == 404


async def test_stats_of_a_draft_are_zero(client: AppClient, audience: dict[str, int]) -> None:
    issue = await make_issue(client)
    stats = (await client.get(f"/api/v1/issues/{issue['id']}/stats")).json()
    assert stats["status"] == "draft"
    assert [stats[k] for k in ("recipients", "queued", "sent", "messages_per_second")] == [
        0, 0, 0, 0
    ]  # fmt: skip


async def test_delivery_log_pages_filters_and_forgets_erased(
    client: AppClient, audience: dict[str, int]
) -> None:
    issue_id = await _issue_in(client, "sending")
    async with client.app.state.sessionmaker() as session:
        bob = await session.scalar(
            select(Delivery).where(Delivery.subscriber_id == audience["bob"])
        )
        assert bob is not None
        bob.status, bob.last_error, bob.message_id = "failed", "550 5.1.1 unknown", "<m@x>"
        await session.commit()
    # Erased as production erases: the delivery stays in the log, without the person.
    assert (await client.delete(f"/api/v1/subscribers/{audience['ann']}")).status_code == 204
    async with client.app.state.sessionmaker() as session:
        rows = (await session.execute(select(Delivery.subscriber_id))).scalars().all()
    assert audience["ann"] not in rows and None in rows
    url = f"/api/v1/issues/{issue_id}/deliveries"
    first = (await client.get(url, params={"limit": 1})).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = (await client.get(url, params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert second["next_cursor"] is None
    items = first["items"] + second["items"]
    assert {d["email"] for d in items} == {None, "bob@example.org"}  # ann was erased
    assert set(items[0]) == {
        "id", "subscriber_id", "email", "status", "attempts", "last_error", "message_id",
        "sent_at",
    }  # fmt: skip
    failed = (await client.get(url, params={"status": "failed"})).json()["items"]
    assert [(d["email"], d["last_error"], d["message_id"]) for d in failed] == [
        ("bob@example.org", "550 5.1.1 unknown", "<m@x>")
    ]
    assert (await client.get(url, params={"status": "weird"})).status_code == 422
    assert (await client.get("/api/v1/issues/999999/deliveries")).status_code == 404
