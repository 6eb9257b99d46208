"""A welcome sequence survives SIGKILLed workers: everyone gets both messages, once or so."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
    WorkerProcess,
    api,
    received_counts,
    seed,
    wait_for,
    worker_env,
)
from tests.smtp import SMTPServer

pytestmark = pytest.mark.slow

PEOPLE = 150
KILLS = 4
IN_FLIGHT = 10 + 50  # as in test_worker_crash: senders plus one unrecorded batch


@pytest.fixture
def smtp() -> SMTPServer:
    server = SMTPServer().start()
    yield server
    server.stop()


async def test_sigkill_mid_sequence_loses_no_one(
    private_db: str, smtp: SMTPServer, tmp_path: Path
) -> None:
    await seed(private_db, 0)  # the list "rel", empty: everyone joins after activation
    env = worker_env(private_db, smtp.url + "?rate=60", tmp_path / "var")
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log") for i in range(2)]
    rng = random.Random(11)
    emails = [f"p{i:04d}@example.org" for i in range(PEOPLE)]
    try:
        async with api(private_db, smtp.url, tmp_path / "var") as client:
            for subject, after in (("Welcome", 1), ("Second", 3)):
                r = await client.post("/api/v1/issues", json={
                    "subject": subject, "lists": ["rel"], "body": "Hello {{ subscriber.email }}",
                    "trigger": {"list": "rel", "after_seconds": after},
                })  # fmt: skip
                assert r.status_code == 201, r.text
                activated = await client.post(f"/api/v1/issues/{r.json()['id']}/activate")
                assert activated.status_code == 200, activated.text
            for w in workers:
                w.start()
            for email in emails:
                member = {"email": email, "lists": ["rel"], "subscription_status": "confirmed"}
                r = await client.post("/api/v1/subscribers", json=member)
                assert r.status_code == 201, r.text
            kills = 0
            deadline = time.monotonic() + 60
            for _ in range(KILLS):  # 300 messages at 60/s: ~5 s of sending to land in
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                if time.monotonic() > deadline:
                    break
                victim = rng.choice(workers)
                victim.kill()
                kills += 1
                victim.start()

            async def everyone_twice() -> bool:
                got = received_counts(smtp)
                return all(got[e] >= 2 for e in emails)

            await wait_for(everyone_twice, timeout=120)
    finally:
        for w in workers:
            w.stop()
    got = received_counts(smtp)
    short = [e for e in emails if got[e] < 2]
    extra = sum(n - 2 for n in got.values() if n > 2)
    print(f"\nsequence SIGKILL: {kills} kills, {len(short)} short, {extra} duplicates")
    assert not short, f"{len(short)} people missed a message: {short[:5]}"
    assert extra <= kills * IN_FLIGHT
    subjects = sorted({r.message["Subject"] for r in smtp.received})
    assert subjects == ["Second", "Welcome"]
