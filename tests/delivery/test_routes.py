"""SMTP routes: an issue or a message that names servers goes through those alone."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from app.delivery.routes import route_names
from app.delivery.transport import build_transports
from tests.conftest import AppClient
from tests.issues.factory import make_issue, make_list, make_subscriber
from tests.smtp import SMTPServer

PEOPLE = 12


@pytest.fixture
def second() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


def test_names_default_to_the_host(tmp_path: Any) -> None:
    url = "smtp://mx.example.org:25,smtp://relay.example.org:587?name=relay,memory://"
    assert route_names(url) == ["mx.example.org", "relay.example.org", "memory"][:1] + [
        "relay", "memory"
    ]  # fmt: skip
    assert [t.route for t in build_transports(url, tmp_path)] == ["mx.example.org", "relay",
                                                                   "memory"]  # fmt: skip
    assert route_names(None) == ["outbox"]


async def _until(check: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):  # bounded in count and in time
        if check() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    return check()


async def test_an_issue_routed_to_b_never_reaches_a(
    app_factory: Callable[..., Any], smtpd: SMTPServer, second: SMTPServer
) -> None:
    a, b = smtpd, second
    client: AppClient = await app_factory(
        embedded_worker=True, smtp_url=f"{a.url}?name=brand-a,{b.url}?name=brand-b"
    )
    await make_list(client, "news")
    for n in range(PEOPLE):
        await make_subscriber(client, f"r{n:02d}@example.org", lists={"news": "confirmed"})

    unknown = await client.post("/api/v1/issues", json={
        "subject": "S", "lists": ["news"], "body": "Hi", "smtp_route": ["brand-c"],
    })  # fmt: skip
    assert unknown.status_code == 422, unknown.text
    assert "brand-c" in unknown.text and "brand-a, brand-b" in unknown.text

    issue = await make_issue(client, smtp_route=["brand-b"])
    assert issue["smtp_route"] == ["brand-b"]
    patched = await client.patch(f"/api/v1/issues/{issue['id']}", json={"smtp_route": ["x"]})
    assert patched.status_code == 422 and "brand-a, brand-b" in patched.text
    shown = (await client.get(f"/api/v1/issues/{issue['id']}")).json()
    assert shown["smtp_route"] == ["brand-b"]
    assert (await client.post(f"/api/v1/issues/{issue['id']}/send")).status_code == 202
    assert await _until(lambda: len(b.received) >= PEOPLE), len(b.received)

    # Its copy keeps the route; null (every server) spreads over both.
    both = await make_issue(client, subject="Both", smtp_route=None)
    assert both["smtp_route"] is None
    assert (await client.post(f"/api/v1/issues/{both['id']}/send")).status_code == 202
    assert await _until(lambda: len(a.received) + len(b.received) >= 2 * PEOPLE)
    await asyncio.sleep(0.3)  # room for a wrong extra copy
    assert {r.message["Subject"] for r in a.received} <= {"Both"}
    assert len([r for r in b.received if r.message["Subject"] == "Week 12"]) == PEOPLE


async def test_a_message_keeps_to_its_route(
    app_factory: Callable[..., Any], smtpd: SMTPServer, second: SMTPServer
) -> None:
    a, b = smtpd, second
    client: AppClient = await app_factory(
        embedded_worker=True, smtp_url=f"{a.url}?name=bulk,{b.url}?name=relay"
    )
    body = {"to": "buyer@example.org", "template": "message", "subject": "Receipt",
            "smtp_route": ["relay"]}  # fmt: skip
    bad = await client.post("/api/v1/messages", json=body | {"smtp_route": ["nope"]})
    assert bad.status_code == 422 and "bulk, relay" in bad.text
    for n in range(5):
        r = await client.post("/api/v1/messages", json=body | {"subject": f"Receipt {n}"})
        assert r.status_code == 202, r.text
    assert await _until(lambda: len(b.received) >= 5), len(b.received)
    await asyncio.sleep(0.3)
    assert a.received == [] and len(b.received) == 5


async def test_a_route_that_names_no_server_any_more_pauses_the_issue(
    app_factory: Callable[..., Any], smtpd: SMTPServer, second: SMTPServer
) -> None:
    a, b = smtpd, second
    editor: AppClient = await app_factory(smtp_url=f"{a.url}?name=brand-a,{b.url}?name=brand-b")
    await make_list(editor, "news")
    await make_subscriber(editor, "r@example.org", lists={"news": "confirmed"})
    issue = await make_issue(editor, smtp_route=["brand-b"])
    # The same database, restarted with brand-b gone from TIDINGS_SMTP_URL.
    worker: AppClient = await app_factory(embedded_worker=True, smtp_url=f"{a.url}?name=brand-a")
    assert (await worker.post(f"/api/v1/issues/{issue['id']}/send")).status_code == 202
    shown: dict[str, Any] = {}
    for _ in range(400):  # bounded: the dispatcher pauses it within a few ticks
        shown = (await worker.get(f"/api/v1/issues/{issue['id']}")).json()
        if shown["status"] == "paused":
            break
        await asyncio.sleep(0.05)
    assert shown["status"] == "paused", shown
    assert "names no configured SMTP server" in shown["status_reason"]
    assert a.received == [] and b.received == []
