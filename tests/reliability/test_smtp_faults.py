"""SMTP faults: random 421/451, dropped connections, stalls, 5xx, and a server down at start."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.reliability.faulty_smtp import FaultPlan, FaultySMTPServer
from tests.reliability.harness import (
    WorkerProcess,
    api,
    create_issue,
    delivery_counts,
    seed,
    start_send,
    wait_for,
    worker_env,
)
from tests.smtp import free_port

pytestmark = pytest.mark.slow

RECIPIENTS = 600
RETRIES = "1,1,2,2,3,3,5,5"


def everyone(server: FaultySMTPServer, emails: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        got = server.counts()
        return all(got[e] for e in emails)

    return check


async def test_random_faults_everyone_delivered_5xx_final(private_db: str, tmp_path: Path) -> None:
    """421/451 at random, drops, 10 s stalls (timeout 2 s): all delivered; 550 tried once."""
    emails = await seed(private_db, RECIPIENTS)
    hopeless = frozenset(emails[:5])
    plan = FaultPlan(seed=11, always_550=hopeless)
    server = FaultySMTPServer(free_port(), plan).start()
    env = worker_env(private_db, server.url, tmp_path / "var", retry_delays=RETRIES)
    workers = [WorkerProcess(env, tmp_path / f"w{i}.log") for i in range(2)]
    try:
        async with api(private_db, server.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            for w in workers:
                w.start()
            await start_send(client, issue_id)
            deliverable = [e for e in emails if e not in hopeless]
            delivered = await wait_for(everyone(server, deliverable), timeout=240)

            async def settled() -> bool:
                counts = await delivery_counts(private_db, issue_id)
                return set(counts) <= {"sent", "failed", "bounced"}

            done = await wait_for(settled, timeout=60)
            counts = await delivery_counts(private_db, issue_id)
            log = (
                await client.get(f"/api/v1/issues/{issue_id}/deliveries", params={"limit": 1000})
            ).json()["items"]
    finally:
        for w in workers:
            w.stop()
        server.stop()
    got = server.counts()
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    print(
        f"\nSMTP faults: {dict(server.faults)}; deliveries {counts}; {duplicates} duplicates; "
        f"550 attempts {[server.attempts[e] for e in hopeless]}"
    )
    assert delivered, [e for e in emails if not got[e] and e not in hopeless][:10]
    assert done, counts
    assert server.faults["stall"] >= 1 and server.faults["drop"] >= 1
    for e in hopeless:  # a 5xx is final: one attempt, never retried
        assert server.attempts[e] == 1, (e, server.attempts[e])
    by_email = {d["email"]: d for d in log}
    for e in hopeless:
        assert by_email[e]["status"] in ("failed", "bounced") and by_email[e]["attempts"] == 1
        assert "550" in (by_email[e]["last_error"] or "")
    assert counts.get("sent") == RECIPIENTS - len(hopeless), counts


async def test_server_down_when_the_send_starts(private_db: str, tmp_path: Path) -> None:
    """Nothing listens when the send starts; once the server comes up, everyone is delivered."""
    emails = await seed(private_db, 200)
    port = free_port()
    server = FaultySMTPServer(port, FaultPlan(first_attempt={}, second_attempt={}))
    # Nothing is killed: a long lease, so a starved worker's claims never repeat.
    env = worker_env(
        private_db, server.url, tmp_path / "var", retry_delays=RETRIES, lease_seconds=30
    )
    worker = WorkerProcess(env, tmp_path / "w.log")
    resumed = False
    try:
        async with api(private_db, server.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            worker.start()
            await start_send(client, issue_id)
            await asyncio.sleep(4)
            server.start()
            # Too many failures in a row may have paused the issue, with the reason: resume it.
            for _ in range(3):
                issue = (await client.get(f"/api/v1/issues/{issue_id}")).json()
                if issue["status"] == "paused":
                    r = await client.post(f"/api/v1/issues/{issue_id}/resume")
                    assert r.status_code == 200, r.text
                    resumed = True
                    break
                await asyncio.sleep(1)
            delivered = await wait_for(everyone(server, emails), timeout=120)
            counts = await delivery_counts(private_db, issue_id)
    finally:
        worker.stop()
        server.stop()
    print(f"\nSMTP down at start: resumed after pause: {resumed}; deliveries {counts}")
    assert delivered, (counts, worker.tail())
    assert sum(server.counts().values()) == len(emails)
