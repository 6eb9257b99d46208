"""Worker processes killed mid-send: SIGKILL again and again, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import pytest

from tests.reliability.harness import (
    WorkerProcess,
    all_received,
    api,
    create_issue,
    delivery_counts,
    received_counts,
    seed,
    start_send,
    wait_for,
    worker_env,
)
from tests.smtp import SMTPServer

pytestmark = pytest.mark.slow

RECIPIENTS = 3000
KILLS = 8
# What one worker can have sent but not yet recorded when it dies: its senders' messages
# (concurrency) plus at most one claimed batch whose results were not written yet.
IN_FLIGHT = 10 + 50


@pytest.fixture
def smtp() -> SMTPServer:
    server = SMTPServer().start()
    yield server
    server.stop()


async def test_sigkill_again_and_again(private_db: str, smtp: SMTPServer, tmp_path: Path) -> None:
    """Kill a worker at random moments, restart it; everyone gets it, duplicates bounded."""
    emails = await seed(private_db, RECIPIENTS)
    # A shared rate limit stretches the send to ~20 s, so the kills land mid-send however fast
    # the machine is.
    env = worker_env(private_db, smtp.url + "?rate=150", tmp_path / "var")
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log") for i in range(2)]
    rng = random.Random(7)
    kills = 0
    try:
        async with api(private_db, smtp.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            for w in workers:
                w.start()
            sent = await start_send(client, issue_id)
            assert sent["recipients"] == RECIPIENTS
            deadline = time.monotonic() + 120
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.4, 1.5))
                if await all_received(smtp, emails)() or time.monotonic() > deadline:
                    break
                victim = rng.choice(workers)
                victim.kill()
                kills += 1
                victim.start()
            delivered = await wait_for(all_received(smtp, emails), timeout=180)
            done = await wait_for(lambda: _all_sent(private_db, issue_id), timeout=60, interval=1.0)
            # The issue is marked sent by a worker's next control tick.
            await wait_for(lambda: _issue_status(client, issue_id, "sent"), timeout=30)
            stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
    finally:
        for w in workers:
            w.stop()
    got = received_counts(smtp)
    missing = [e for e in emails if not got[e]]
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    print(
        f"\nSIGKILL: {kills} kills survived, {RECIPIENTS} recipients, {len(missing)} missing, "
        f"{duplicates} duplicates (bound {kills * IN_FLIGHT}); stats {stats}"
    )
    assert kills >= 6, "the send ended before the workers could be killed enough"
    assert delivered and not missing, (missing[:10], workers[0].tail())
    assert done, await delivery_counts(private_db, issue_id)
    assert duplicates <= kills * IN_FLIGHT
    assert stats["sent"] == RECIPIENTS and stats["status"] == "sent", stats


async def _issue_status(client: object, issue_id: int, status: str) -> bool:
    r = await client.get(f"/api/v1/issues/{issue_id}")  # type: ignore[attr-defined]
    return bool(r.json()["status"] == status)


async def _all_sent(url: str, issue_id: int) -> bool:
    counts = await delivery_counts(url, issue_id)
    return set(counts) == {"sent"}


async def test_sigterm_drains_without_duplicates(
    private_db: str, smtp: SMTPServer, tmp_path: Path
) -> None:
    """SIGTERM mid-send: the worker exits 0 within 30 s; a new one finishes; no duplicates."""
    emails = await seed(private_db, 1500)
    env = worker_env(private_db, smtp.url, tmp_path / "var")
    first = WorkerProcess(env, tmp_path / "first.log")
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        async with api(private_db, smtp.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            first.start()
            await start_send(client, issue_id)

            async def some_sent() -> bool:
                return sum(received_counts(smtp).values()) >= 200

            assert await wait_for(some_sent, timeout=60), first.tail()
            took = await asyncio.to_thread(first.terminate, 40)
            assert first.proc is not None
            code = first.proc.returncode
            before = sum(received_counts(smtp).values())
            second.start()
            delivered = await wait_for(all_received(smtp, emails), timeout=120)
            done = await wait_for(lambda: _all_sent(private_db, issue_id), timeout=60)
    finally:
        first.stop()
        second.stop()
    got = received_counts(smtp)
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    print(
        f"\nSIGTERM: exited {code} after {took:.1f} s with {before} of 1500 sent; "
        f"{duplicates} duplicates"
    )
    assert took <= 30, first.tail()
    assert code == 0, first.tail()
    assert delivered and done
    assert duplicates == 0
