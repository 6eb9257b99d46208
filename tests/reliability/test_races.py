"""Races with exactly one effect: two sends, workers claiming at once, a webhook twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.delivery.dispatcher import Dispatcher
from app.delivery.transport import build_transports
from app.models import Bounce, Delivery
from tests.conftest import ADMIN_TOKEN, AppClient
from tests.reliability.harness import (
    SECRET_KEY,
    all_received,
    api,
    create_issue,
    received_counts,
    seed,
    wait_for,
)
from tests.smtp import SMTPServer

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[1] / "bounces" / "fixtures"
WEBHOOK_SECRET = "race-webhook-secret"


async def _count(url: str, stmt: Any) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(stmt)).scalar_one())
    finally:
        await engine.dispose()


async def test_two_sends_of_one_issue_two_apps(private_db: str, tmp_path: Path) -> None:
    """Four POST /send at once, from two API processes' apps: one 202, one set of deliveries."""
    await seed(private_db, 500)
    async with (
        api(private_db, "smtp://127.0.0.1:9", tmp_path / "a") as a,
        api(private_db, "smtp://127.0.0.1:9", tmp_path / "b") as b,
    ):
        issue_id = await create_issue(a)
        replies = await asyncio.gather(
            *(c.post(f"/api/v1/issues/{issue_id}/send", json={}) for c in (a, b, a, b))
        )
    codes = sorted(r.status_code for r in replies)
    deliveries = await _count(
        private_db, select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)
    )
    print(f"\ntwo sends: answers {codes}, {deliveries} deliveries for 500 recipients")
    assert codes == [202, 409, 409, 409], [r.text for r in replies]
    assert deliveries == 500


async def test_dispatchers_claiming_at_once_send_each_once(private_db: str, tmp_path: Path) -> None:
    """Four dispatchers on one PostgreSQL, small batches: every recipient exactly once."""
    smtp = SMTPServer().start()
    emails = await seed(private_db, 2000)
    settings = Settings(
        database_url=private_db,
        smtp_url=smtp.url,
        var_dir=tmp_path / "var",
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        public_url="http://tidings.test",
        batch_size=20,
        concurrency=5,
        lease_seconds=30,
    )
    engines, dispatchers, tasks = [], [], []
    try:
        async with api(private_db, smtp.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            for _ in range(4):
                engine = make_engine(private_db)
                d = Dispatcher(
                    settings=settings,
                    sessionmaker=make_sessionmaker(engine),
                    transports=build_transports(smtp.url, settings.var_dir),
                )
                engines.append(engine)
                dispatchers.append(d)
                tasks.append(asyncio.create_task(d.run()))
            r = await client.post(f"/api/v1/issues/{issue_id}/send", json={})
            assert r.status_code == 202
            delivered = await wait_for(all_received(smtp, emails), timeout=120)
            await asyncio.sleep(1)  # anything extra would arrive now
    finally:
        for d in dispatchers:
            d.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=40)
        for d in dispatchers:
            for t in d.transports:
                await t.close()
        for engine in engines:
            await engine.dispose()
        smtp.stop()
    got = received_counts(smtp)
    twice = {e: n for e, n in got.items() if n > 1}
    total = sum(got.values())
    print(f"\nfour dispatchers: {total} messages for {len(emails)}; twice: {len(twice)}")
    assert delivered
    assert not twice, list(twice.items())[:10]


def _postmark() -> bytes:
    payload = json.loads((FIXTURES / "postmark_bounce.json").read_text())
    payload["ID"] = 99887766
    return json.dumps(payload).encode()


async def test_same_webhook_twice_at_once_two_apps(private_db: str, tmp_path: Path) -> None:
    """One bounce delivered six times at once, to two API apps: one bounce row."""
    body = _postmark()
    headers = {"X-Tidings-Secret": WEBHOOK_SECRET, "Content-Type": "application/json"}
    async with (
        api(private_db, "smtp://127.0.0.1:9", tmp_path / "a", webhook_secret=WEBHOOK_SECRET) as a,
        api(private_db, "smtp://127.0.0.1:9", tmp_path / "b", webhook_secret=WEBHOOK_SECRET) as b,
    ):
        replies = await asyncio.gather(
            *(
                c.post("/webhooks/postmark", content=body, headers=headers)
                for c in (a, b, a, b, a, b)
            )
        )
    assert all(r.status_code in (200, 202) for r in replies), [r.text for r in replies]
    recorded = sum(r.json().get("recorded", 0) for r in replies)
    rows = await _count(private_db, select(func.count()).select_from(Bounce))
    print(f"\nwebhook x6 at once: {rows} bounce row(s), recorded {recorded}")
    assert rows == 1
    assert recorded == 1


async def test_same_webhook_twice_at_once(app_factory: Callable[..., Any]) -> None:
    """On both backends: the same webhook twice at once is one bounce."""
    client: AppClient = await app_factory(webhook_secret=WEBHOOK_SECRET)
    body = _postmark()
    headers = {"X-Tidings-Secret": WEBHOOK_SECRET, "Content-Type": "application/json"}
    replies = await asyncio.gather(
        *(client.post("/webhooks/postmark", content=body, headers=headers) for _ in range(2))
    )
    assert all(r.status_code in (200, 202) for r in replies), [r.text for r in replies]
    found = (await client.get("/api/v1/bounces")).json()["items"]
    assert len(found) == 1, found
