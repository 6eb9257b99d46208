"""Transactional messages survive a SIGKILLed worker: every one is sent, none is lost."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.reliability.harness import WorkerProcess, api, received_counts, wait_for, worker_env
from tests.smtp import SMTPServer

pytestmark = pytest.mark.slow

MESSAGES = 120
KILLS = 3
IN_FLIGHT = 10 + 50  # senders plus one claimed batch that was sent but not yet recorded


@pytest.fixture
def smtp() -> SMTPServer:
    server = SMTPServer().start()
    yield server
    server.stop()


async def _holds_messages(url: str, pid: int) -> int:
    """How many message deliveries the worker with this pid holds under its lease now."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            held = await conn.scalar(
                text("SELECT count(*) FROM deliveries WHERE issue_id = 0 AND message_ref IS NOT"
                     " NULL AND status = 'sending' AND lease_owner LIKE :pid"),
                {"pid": f"%:{pid}:%"},
            )  # fmt: skip
            return int(held or 0)
    finally:
        await engine.dispose()


async def _statuses(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT status, lease_owner, count(*) FROM deliveries"
                                           " GROUP BY status, lease_owner"))  # fmt: skip
            return [tuple(r) for r in rows]
    finally:
        await engine.dispose()


async def test_sigkill_with_claimed_messages_loses_none(
    private_db: str, smtp: SMTPServer, tmp_path: Path
) -> None:
    # 40 a second: the messages take seconds, so each kill lands on claimed ones.
    env = worker_env(private_db, smtp.url + "?rate=40", tmp_path / "var")
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log") for i in range(2)]
    emails = [f"m{i:04d}@example.org" for i in range(MESSAGES)]
    ids: list[int] = []
    try:
        async with api(private_db, smtp.url, tmp_path / "var") as client:
            for n, email in enumerate(emails):
                body = {"to": email, "template": "message", "subject": f"Receipt {n}",
                        "data": {"text": "Paid."}}  # fmt: skip
                r = await client.post("/api/v1/messages", json=body)
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            for w in workers:
                w.start()
            kills = 0
            deadline = time.monotonic() + 60
            while kills < KILLS and time.monotonic() < deadline:
                victim = workers[kills % 2]
                assert victim.proc is not None

                async def holding(pid: int = victim.proc.pid) -> bool:
                    return await _holds_messages(private_db, pid) > 0

                if await wait_for(holding, timeout=30, interval=0.05):
                    victim.kill()  # with message deliveries claimed and unrecorded
                    kills += 1
                    victim.start()
                else:
                    break
            assert kills >= 1, (len(smtp.received), await _statuses(private_db))

            async def everyone() -> bool:
                got = received_counts(smtp)
                return all(got[e] for e in emails)

            assert await wait_for(everyone, timeout=120), [w.tail() for w in workers]

            async def all_sent() -> bool:
                for i in ids:
                    shown = (await client.get(f"/api/v1/messages/{i}")).json()
                    if shown["status"] != "sent":
                        return False
                return True

            assert await wait_for(all_sent, timeout=30)
    finally:
        for w in workers:
            w.stop()
    got = received_counts(smtp)
    extra = sum(n - 1 for n in got.values() if n > 1)
    print(f"\nmessages SIGKILL: {kills} kills, {extra} duplicates")
    assert all(got[e] >= 1 for e in emails)
    assert extra <= kills * IN_FLIGHT
    assert sorted({r.message["Subject"] for r in smtp.received}) == sorted(
        f"Receipt {n}" for n in range(MESSAGES)
    )
