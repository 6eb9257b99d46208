"""From POST /send to the inbox with the real dispatcher: previews, log, stats and archive agree."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from typing import Any

from app.issues import compose
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber
from tests.smtp import SMTPServer

TOKEN_URL = re.compile(r"(/u/|/preferences/)[a-z2-7]+")


async def _until_finished(client: AppClient, issue_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    for _ in range(600):  # bounded in count and in time
        stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
        if stats["status"] not in ("sending", "scheduled") or time.monotonic() > deadline:
            return stats  # type: ignore[no-any-return]
        await asyncio.sleep(0.05)
    return stats  # type: ignore[no-any-return]


def _same(html: str) -> str:
    """HTML with the per-send tokens blanked and line ends as in a decoded MIME part."""
    return TOKEN_URL.sub(r"\1TOKEN", html).replace("\r\n", "\n")


async def test_sent_issue_matches_preview_log_stats_and_archive(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    # Previews are never tracked; tracked messages are compared in tests/engagement.
    client: AppClient = await app_factory(
        embedded_worker=True, bounce_domain="bounce.test", tracking="off"
    )
    await make_list(client, "news", "Weekly News")
    people = {
        f"r{n}@example.org": await make_subscriber(
            client, f"r{n}@example.org", name=f"Reader <{n}>", lists={"news": "confirmed"}
        )
        for n in range(5)
    }
    issue = await make_issue(client, subject="Straight from the press")
    response = await client.post(f"/api/v1/issues/{issue['id']}/send")
    assert response.json() == {"status": "sending", "recipients": 5}

    stats = await _until_finished(client, issue["id"])
    assert stats["status"] == "sent", stats
    assert (stats["sent"], stats["queued"], stats["failed"]) == (5, 0, 0)
    assert stats["finished_at"] is not None and stats["messages_per_second"] > 0
    assert sorted(r.recipients[0] for r in smtpd.received) == sorted(people)

    settings = client.app.state.settings
    log = (await client.get(f"/api/v1/issues/{issue['id']}/deliveries")).json()["items"]
    assert {d["email"] for d in log} == set(people) and {d["status"] for d in log} == {"sent"}
    for delivery in log:
        [received] = smtpd.to(delivery["email"])
        message = received.message
        # The log's Message-ID is the one sent, and it leads back to the delivery.
        assert message["Message-ID"] == delivery["message_id"]
        assert compose.delivery_from_message_id(settings, delivery["message_id"]) == delivery["id"]
        assert received.sender.startswith("bounces+") and received.sender.endswith("@bounce.test")
        # The preview for that subscriber is what arrived, apart from per-send ids and tokens.
        preview = await client.get(
            f"/api/v1/issues/{issue['id']}/preview",
            params={"format": "html", "subscriber_id": delivery["subscriber_id"]},
        )
        assert _same(preview.text) == _same(message.get_body(("html",)).get_content())
        assert "Reader &lt;" in preview.text

    archive = await client.get(f"/archive/{issue['id']}")
    assert archive.status_code == 200 and "Straight from the press" in archive.text
    assert "Reader" not in archive.text


def test_message_ids_are_stable_and_unforgeable(make_settings: Callable[..., Any]) -> None:
    settings = make_settings()
    mid = compose.message_id(settings, issue_id=7, delivery_id=12345)
    assert mid == compose.message_id(settings, issue_id=7, delivery_id=12345)  # retries agree
    assert mid.startswith("<7.12345.") and mid.endswith(f"@{settings.sender_domain}>")
    assert compose.delivery_from_message_id(settings, mid) == 12345
    assert compose.delivery_from_message_id(settings, mid.strip("<>")) == 12345
    forged = mid.replace("12345", "12346")
    assert compose.delivery_from_message_id(settings, forged) is None
    other = make_settings(secret_key="another-secret-" + "y" * 32)
    assert compose.delivery_from_message_id(other, mid) is None
    assert compose.delivery_from_message_id(settings, "<abc@example.org>") is None


async def test_an_erased_recipient_is_skipped_and_the_send_goes_on(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    api: AppClient = await app_factory()  # no dispatcher yet: the send waits in the queue
    await make_list(api, "news")
    ids = {
        email: await make_subscriber(api, email, lists={"news": "confirmed"})
        for email in ("stay@example.org", "erased@example.org")
    }
    issue = await make_issue(api)
    url = f"/api/v1/issues/{issue['id']}"
    assert (await api.post(f"{url}/send")).json() == {"status": "sending", "recipients": 2}
    erased = await api.delete(f"/api/v1/subscribers/{ids['erased@example.org']}")
    assert erased.status_code == 204
    log = (await api.get(f"{url}/deliveries")).json()["items"]
    assert sorted((d["subscriber_id"] or 0, d["status"]) for d in log) == [
        (0, "queued"), (ids["stay@example.org"], "queued"),
    ]  # fmt: skip

    worker: AppClient = await app_factory(embedded_worker=True)
    stats = await _until_finished(worker, issue["id"])
    assert stats["status"] == "sent", stats
    assert [r.recipients[0] for r in smtpd.received] == ["stay@example.org"]
    log = (await api.get(f"{url}/deliveries")).json()["items"]
    assert sorted((d["subscriber_id"] or 0, d["status"]) for d in log) == [
        (0, "skipped"), (ids["stay@example.org"], "sent"),
    ]  # fmt: skip
