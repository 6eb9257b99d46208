"""Every 2xx is durable: the write is committed before the answer leaves (CONTRACT, issue 10 §1).

The app runs in a real uvicorn on 127.0.0.1 in a thread of its own; its engine's COMMIT is
slowed by 0.3 s. A client that reads on a second connection the moment its 2xx arrives
must see what it wrote: with a commit that ran after the response, it would not. A COMMIT
that fails must answer an error, and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from tests.conftest import ADMIN_TOKEN
from tests.smtp import free_port

SLOW_COMMIT = 0.3


class ThreadedServer:
    """uvicorn serving one app in a thread with its own event loop."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.commit_hook: Callable[[], None] | None = None

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

        def on_commit(_conn: Any) -> None:
            if self.commit_hook is not None:
                self.commit_hook()

        event.listen(self.app.state.engine.sync_engine, "commit", on_commit)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def live(make_settings: Callable[..., Settings]) -> Iterator[ThreadedServer]:
    server = ThreadedServer(make_settings(webhook_secret="hook-secret")).start()
    yield server
    server.stop()


async def count(db: str, sql: str) -> int:
    """Read on a connection of our own, not the server's."""
    engine = make_engine(db)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


JSON = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CSV = "email,name,city\nimp1@example.org,Imp One,Leeds\nimp2@example.org,,York\n"


async def _seed(http: httpx.AsyncClient) -> dict[str, Any]:
    """A list, a subscriber and a draft issue that the write calls below act on."""
    r = await http.post(
        "/api/v1/lists", json={"slug": "base", "name": "Base", "double_opt_in": False}
    )
    assert r.status_code == 201, r.text
    r = await http.post(
        "/api/v1/subscribers", json={"email": "seed@example.org", "lists": ["base"]}
    )
    assert r.status_code == 201, r.text
    sub = r.json()["id"]
    r = await http.post(
        "/api/v1/issues",
        json={"subject": "Seeded", "lists": ["base"], "format": "markdown", "body": "Hello"},
    )
    assert r.status_code == 201, r.text
    return {"subscriber": sub, "issue": r.json()["id"]}


# (what, method, path, body kind, body, the read that must see the write)
WRITES: list[tuple[str, str, str, str, Any, str]] = [
    (
        "create list",
        "POST",
        "/api/v1/lists",
        "json",
        {"slug": "fresh", "name": "Fresh", "double_opt_in": True},
        "SELECT count(*) FROM lists WHERE slug = 'fresh'",
    ),
    (
        "add subscriber",
        "POST",
        "/api/v1/subscribers",
        "json",
        {"email": "new@example.org", "lists": ["base"]},
        "SELECT count(*) FROM subscribers WHERE email = 'new@example.org'",
    ),
    (
        "public sign-up",
        "POST",
        "/api/v1/subscribe",
        "json",
        {"email": "visitor@example.org", "lists": ["base"]},
        "SELECT count(*) FROM subscribers WHERE email = 'visitor@example.org'",
    ),
    (
        "edit subscriber",
        "PATCH",
        "/api/v1/subscribers/{subscriber}",
        "json",
        {"attributes": {"city": "Hull"}},
        "SELECT count(*) FROM subscribers WHERE CAST(attributes AS TEXT) LIKE '%Hull%'",
    ),
    (
        "import",
        "POST",
        "/api/v1/subscribers/import?list=base",
        "csv",
        CSV,
        "SELECT count(*) - 1 FROM subscribers WHERE email LIKE 'imp%'",
    ),
    (
        "create issue",
        "POST",
        "/api/v1/issues",
        "json",
        {"subject": "Written", "lists": ["base"], "format": "markdown", "body": "x"},
        "SELECT count(*) FROM issues WHERE subject = 'Written'",
    ),
    (
        "edit issue",
        "PATCH",
        "/api/v1/issues/{issue}",
        "json",
        {"subject": "Edited"},
        "SELECT count(*) FROM issues WHERE subject = 'Edited'",
    ),
    (
        "send",
        "POST",
        "/api/v1/issues/{issue}/send",
        "json",
        {},
        "SELECT count(*) FROM issues WHERE status = 'sending'",
    ),
    (
        "record bounce",
        "POST",
        "/api/v1/bounces",
        "json",
        {"email": "seed@example.org", "type": "hard", "reason": "test"},
        "SELECT count(*) FROM bounces",
    ),
    (
        "erase subscriber",
        "DELETE",
        "/api/v1/subscribers/{subscriber}",
        "none",
        None,
        "SELECT count(*) FROM suppressions",
    ),
]


async def _call(
    http: httpx.AsyncClient, method: str, path: str, kind: str, body: Any
) -> httpx.Response:
    if kind == "json":
        return await http.request(method, path, json=body)
    if kind == "csv":
        return await http.request(method, path, content=body, headers={"content-type": "text/csv"})
    return await http.request(method, path)


@pytest.mark.parametrize("what", [w[0] for w in WRITES])
async def test_a_2xx_is_visible_to_the_next_reader(
    live: ThreadedServer, db: str, what: str
) -> None:
    _, method, path, kind, body, check = next(w for w in WRITES if w[0] == what)
    async with httpx.AsyncClient(base_url=live.url, headers=JSON, timeout=30) as http:
        ids = await _seed(http)
        before = await count(db, check)
        live.commit_hook = lambda: time.sleep(SLOW_COMMIT)
        try:
            r = await _call(http, method, path.format(**ids), kind, body)
            after = await count(db, check)  # at once, on another connection
        finally:
            live.commit_hook = None
    assert 200 <= r.status_code < 300, r.text
    assert after > before, f"{what}: answered {r.status_code} before its write was committed"


def _failing_commit() -> None:
    raise OperationalError("COMMIT", {}, ConnectionError("the database went away"))


@pytest.mark.parametrize("what", ["create list", "add subscriber", "create issue", "send"])
async def test_a_commit_that_fails_answers_an_error(
    live: ThreadedServer, db: str, what: str
) -> None:
    _, method, path, kind, body, check = next(w for w in WRITES if w[0] == what)
    async with httpx.AsyncClient(base_url=live.url, headers=JSON, timeout=30) as http:
        ids = await _seed(http)
        before = await count(db, check)
        live.commit_hook = _failing_commit
        try:
            r = await _call(http, method, path.format(**ids), kind, body)
        finally:
            live.commit_hook = None
        assert r.status_code == 503, r.text
        assert "nothing was saved" in r.json()["detail"]
        assert await count(db, check) == before
        # The app is fine afterwards: the same write goes through.
        r = await _call(http, method, path.format(**ids), kind, body)
        assert 200 <= r.status_code < 300, r.text
    await asyncio.sleep(0)
