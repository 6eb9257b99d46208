"""From a real received email's List-Unsubscribe header to the next send, with the dispatcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber
from tests.smtp import SMTPServer
from tests.subscribers import factory


async def finished(client: AppClient, issue_id: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats: dict[str, Any] = {}
    for _ in range(600):  # bounded in count and in time
        stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
        if stats["status"] not in ("sending", "scheduled") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return stats


async def test_unsubscribe_reaches_a_queued_send_and_the_header_link_works(
    app_factory: Callable[..., Any], smtpd: SMTPServer
) -> None:
    api: AppClient = await app_factory(embedded_worker=False)
    await make_list(api, "news", "Weekly News")
    ids = {
        email: await make_subscriber(api, email, lists={"news": "confirmed"})
        for email in ("r0@example.org", "r1@example.org")
    }
    issue = await make_issue(api)
    assert (await api.post(f"/api/v1/issues/{issue['id']}/send")).json()["recipients"] == 2
    # r1 leaves while the send is queued but before its message goes.
    token = factory.token(api.app, ids["r1@example.org"], issue["id"])
    assert (
        await api.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    ).status_code == 200

    await app_factory(embedded_worker=True)  # a dispatcher on the same database
    stats = await finished(api, issue["id"])
    assert stats["status"] == "sent" and stats["sent"] == 1, stats
    assert [r.recipients[0] for r in smtpd.received] == ["r0@example.org"]

    # The header of what r0 received is a working RFC 8058 one-click link.
    [received] = smtpd.to("r0@example.org")
    header = received.message["List-Unsubscribe"]
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = urlsplit(header.strip().strip("<>"))
    assert url.netloc == "tidings.test"
    r = await api.post(url.path, content=b"List-Unsubscribe=One-Click",
                       headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 200
    assert await factory.statuses(api.app, ids["r0@example.org"]) == {"news": "unsubscribed"}
    stats = (await api.get(f"/api/v1/issues/{issue['id']}/stats")).json()
    assert stats["unsubscribed"] == 2
