"""Triggered issues (welcome and drip sequences) on real workers into the loopback SMTP server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber
from tests.smtp import SMTPServer


async def _triggered(client: AppClient, subject: str, after: int, slug: str = "news") -> int:
    issue = await make_issue(
        client, subject=subject, lists=[slug], trigger={"list": slug, "after_seconds": after}
    )
    assert issue["status"] == "draft" and issue["trigger"] == {"list": slug, "after_seconds": after}
    response = await client.post(f"/api/v1/issues/{issue['id']}/activate")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    return int(issue["id"])


async def _join(client: AppClient, email: str, slug: str = "news") -> int:
    """A pending member, then her confirmation (the admin API's path through memberships)."""
    sub_id = await make_subscriber(client, email, lists={slug: "pending"})
    await _set(client, sub_id, slug, "confirmed")
    return sub_id


async def _set(client: AppClient, sub_id: int, slug: str, status: str) -> None:
    response = await client.patch(
        f"/api/v1/subscribers/{sub_id}", json={"lists": [{"slug": slug, "status": status}]}
    )
    assert response.status_code == 200, response.text


async def _wait_for(smtpd: SMTPServer, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(800):  # bounded in count and in time
        if len(smtpd.received) >= count or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


def _subjects(smtpd: SMTPServer, email: str) -> list[str]:
    return [r.message["Subject"] for r in smtpd.to(email)]


async def test_welcome_then_second_and_leaving_stops_the_rest(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    client: AppClient = await app_factory(embedded_worker=True, tracking="off")
    await make_list(client, "news")
    welcome = await _triggered(client, "Welcome", 0)
    second = await _triggered(client, "Week two", 2)
    stays = await _join(client, "stays@example.org")
    leaves = await _join(client, "leaves@example.org")
    await _wait_for(smtpd, 2)
    assert _subjects(smtpd, "stays@example.org") == ["Welcome"]
    assert _subjects(smtpd, "leaves@example.org") == ["Welcome"]
    await _set(client, leaves, "news", "unsubscribed")  # before her second message is due
    await _wait_for(smtpd, 3)
    await asyncio.sleep(1.5)  # room for a wrong fourth message to arrive
    assert _subjects(smtpd, "stays@example.org") == ["Welcome", "Week two"]
    assert _subjects(smtpd, "leaves@example.org") == ["Welcome"]
    assert stays != leaves

    # Stats and the delivery log as for any issue; an active issue never finishes.
    stats = (await client.get(f"/api/v1/issues/{second}/stats")).json()
    assert stats["status"] == "active" and stats["recipients"] == 2
    assert (stats["sent"], stats["queued"]) == (1, 0)
    log = (await client.get(f"/api/v1/issues/{second}/deliveries")).json()["items"]
    assert {(d["email"], d["status"]) for d in log} == {
        ("stays@example.org", "sent"),
        ("leaves@example.org", "skipped"),
    }
    assert (await client.get(f"/api/v1/issues/{welcome}/stats")).json()["sent"] == 2


async def test_members_before_activation_and_after_deactivation_are_not_enrolled(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    client: AppClient = await app_factory(embedded_worker=True, tracking="off")
    await make_list(client, "news")
    issue = await make_issue(
        client, subject="Hello", lists=["news"], trigger={"list": "news", "after_seconds": 0}
    )
    await _join(client, "early@example.org")  # confirmed while the issue is a draft
    assert (await client.post(f"/api/v1/issues/{issue['id']}/activate")).status_code == 200
    twice = await _join(client, "twice@example.org")
    await _set(client, twice, "news", "confirmed")  # confirming again sends nothing more
    await _wait_for(smtpd, 1)
    moved = await client.post(f"/api/v1/issues/{issue['id']}/deactivate")
    assert moved.status_code == 200 and moved.json()["status"] == "inactive"
    await _join(client, "late@example.org")
    await asyncio.sleep(1.5)
    assert [r.recipients[0] for r in smtpd.received] == ["twice@example.org"]
    stats = (await client.get(f"/api/v1/issues/{issue['id']}/stats")).json()
    assert (stats["status"], stats["recipients"], stats["sent"]) == ("inactive", 1, 1)


async def test_bad_triggers_and_send_are_refused(client: AppClient) -> None:
    await make_list(client, "news")
    base = {"subject": "S", "body": "Hi", "lists": ["news"]}
    unknown = await client.post(
        "/api/v1/issues", json=base | {"trigger": {"list": "nope", "after_seconds": 5}}
    )
    assert unknown.status_code == 422 and "trigger.list" in unknown.text
    negative = await client.post(
        "/api/v1/issues", json=base | {"trigger": {"list": "news", "after_seconds": -1}}
    )
    assert negative.status_code == 422 and "after_seconds" in negative.text
    issue = await make_issue(client, trigger={"list": "news", "after_seconds": 5})
    sent = await client.post(f"/api/v1/issues/{issue['id']}/send")
    assert sent.status_code == 409 and "activate" in sent.text
    assert (await client.post(f"/api/v1/issues/{issue['id']}/deactivate")).status_code == 409
    plain = await make_issue(client)
    assert (await client.post(f"/api/v1/issues/{plain['id']}/activate")).status_code == 409
    shown = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
    assert shown["trigger"] == {"list": "news", "after_seconds": 5}


async def test_a_public_single_opt_in_sign_up_is_welcomed(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    client: AppClient = await app_factory(embedded_worker=True, tracking="off")
    await make_list(client, "news", double_opt_in=False)
    await _triggered(client, "Welcome aboard", 0)
    anon = AppClient(transport=client._transport, base_url=str(client.base_url))
    signed = await anon.post("/api/v1/subscribe", json={"email": "new@example.org",
                                                        "lists": ["news"]})  # fmt: skip
    assert signed.status_code in (200, 201, 202) and signed.json()["status"] == "confirmed"
    await _wait_for(smtpd, 1)
    await anon.aclose()
    assert _subjects(smtpd, "new@example.org") == ["Welcome aboard"]
