"""A `tidings worker` process sends with the branding set in the console, read before each send."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AppClient
from tests.delivery.helpers import new_issue, seed, send, status_of, wait_for
from tests.delivery.test_workers import stop_all, worker
from tests.smtp import SMTPServer


def texts(server: SMTPServer) -> list[str]:
    """Every text and HTML part of every message the server accepted, decoded."""
    with server.lock:
        messages = [r.message for r in server.received]
    return [
        str(part.get_content())
        for m in messages
        for part in m.walk()
        if part.get_content_maintype() == "text"
    ]


async def brand(client: AppClient, name: str) -> None:
    response = await client.put("/api/v1/branding", json={"name": name})
    assert response.status_code == 200, response.text


async def send_and_wait(client: AppClient, issue_id: int) -> None:
    await send(client, issue_id)

    async def done() -> bool:
        return await status_of(client, issue_id) == "sent"

    await wait_for(done, 60, f"issue {issue_id} to be sent by the worker")


@pytest.mark.postgres_only
async def test_worker_mail_carries_the_console_set_organisation_name(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer, tmp_path: Path
) -> None:
    client = await app_factory()
    await seed(db, 3)
    first, second = await new_issue(client), await new_issue(client)
    secret = str(client.app.state.settings.secret_key_value)
    await brand(client, "Riverside Partnership Bulletin")
    procs = [worker(db, smtpd, tmp_path, secret)]
    try:
        await send_and_wait(client, first)
        first_texts = texts(smtpd)
        assert len(first_texts) >= 3
        assert all("Riverside Partnership Bulletin" in t for t in first_texts)
        # Renamed while the worker runs (well within its 30 s refresh period): the next
        # send compiles with the new name, because the worker reads it before compiling.
        smtpd.reset()
        await brand(client, "Hillside Council News")
        await send_and_wait(client, second)
        second_texts = texts(smtpd)
        assert len(second_texts) >= 3
        assert all("Hillside Council News" in t for t in second_texts)
        assert not any("Riverside Partnership Bulletin" in t for t in second_texts)
    finally:
        stop_all(procs)
