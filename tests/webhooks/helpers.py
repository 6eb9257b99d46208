"""Running a webhook sender against a test app, and waiting for what it does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from app.webhooks.models import WebhookEvent
from app.webhooks.outbox import Policy
from app.webhooks.sender import WebhookSender
from tests.conftest import AppClient

FAST = Policy(delays=(0.05,) * 7, disable_after=timedelta(hours=24), disable_failures=10)
QUICK_TIMEOUT = httpx.Timeout(2.0, connect=2.0)  # a loaded machine (parallel tests) stays under it


@asynccontextmanager
async def running_sender(
    client: AppClient,
    *,
    owner: str = "test-sender",
    policy: Policy = FAST,
    http: httpx.AsyncClient | None = None,
    **settings: Any,
) -> AsyncIterator[WebhookSender]:
    """A sender on the app's database until the block ends (settings overridden by kwargs)."""
    app_settings = client.app.state.settings.model_copy(update=settings)
    sender = WebhookSender(settings=app_settings, sessionmaker=client.app.state.sessionmaker,
                           owner=owner, policy=policy, poll=0.05,
                           timeout=QUICK_TIMEOUT, client=http)  # fmt: skip
    sender.start()
    try:
        yield sender
    finally:
        await sender.stop()


async def eventually(check: Callable[[], Awaitable[Any] | Any], seconds: float = 20.0) -> Any:
    """Poll until `check()` is truthy; its value. Fails the test after `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not true within {seconds} s: {check}")
        await asyncio.sleep(0.05)


async def count_events(client: AppClient, kind: str | None = None) -> int:
    async with client.app.state.sessionmaker() as s:
        stmt = select(func.count()).select_from(WebhookEvent)
        if kind:
            stmt = stmt.where(WebhookEvent.type == kind)
        return int(await s.scalar(stmt) or 0)


async def register(client: AppClient, url: str, events: list[str]) -> dict[str, Any]:
    r = await client.post("/api/v1/webhooks", json={"url": url, "events": events})
    assert r.status_code == 201, r.text
    return dict(r.json())
