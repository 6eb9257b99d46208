"""The soak: a long send under random kills and SMTP faults (make soak; --run-soak)."""

from __future__ import annotations

import asyncio
import os
import random
import time
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

RECIPIENTS = int(os.environ.get("TIDINGS_SOAK_RECIPIENTS", "50000"))
WORKERS = 3


@pytest.mark.soak
@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_soak(private_db: str, tmp_path: Path) -> None:
    """50,000 recipients, three workers killed at random, a faulty server: no one missed."""
    emails = await seed(private_db, RECIPIENTS)
    plan = FaultPlan(
        seed=5,
        first_attempt={"421": 0.005, "451": 0.02, "drop": 0.01, "stall": 0.001},
        second_attempt={"451": 0.01},
        max_stalls=5,
    )
    server = FaultySMTPServer(free_port(), plan).start()
    env = worker_env(
        private_db, server.url, tmp_path / "var", retry_delays="1,2,3,5,8,13", batch_size=100
    )
    workers = [WorkerProcess(env, tmp_path / f"w{i}.log") for i in range(WORKERS)]
    rng = random.Random(3)
    kills = 0
    started = time.monotonic()
    try:
        async with api(private_db, server.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            for w in workers:
                w.start()
            await start_send(client, issue_id)

            async def everyone() -> bool:
                got = server.counts()
                return all(got[e] for e in emails)

            deadline = time.monotonic() + 1800
            for _ in range(2000):  # bounded: at most one kill every 2-8 s for 30 minutes
                if time.monotonic() > deadline or await everyone():
                    break
                await asyncio.sleep(rng.uniform(2, 8))
                victim = rng.choice(workers)
                victim.kill()
                kills += 1
                victim.start()
            delivered = await wait_for(everyone, timeout=600, interval=2)

            async def finished() -> bool:
                r = await client.get(f"/api/v1/issues/{issue_id}/stats")
                return r.json()["status"] == "sent"

            await wait_for(finished, timeout=120, interval=2)
            stats = (await client.get(f"/api/v1/issues/{issue_id}/stats")).json()
            counts = await delivery_counts(private_db, issue_id)
    finally:
        for w in workers:
            w.stop()
        server.stop()
    elapsed = time.monotonic() - started
    got = server.counts()
    missing = [e for e in emails if not got[e]]
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    print(
        f"\nsoak: {RECIPIENTS} recipients in {elapsed:.0f} s ({RECIPIENTS / elapsed:.0f}/s), "
        f"{kills} kills, faults {dict(server.faults)}, {len(missing)} missing, "
        f"{duplicates} duplicates ({duplicates / max(1, kills):.1f} per kill); "
        f"deliveries {counts}; stats rate {stats['messages_per_second']}"
    )
    assert delivered and not missing, missing[:10]
    assert counts == {"sent": RECIPIENTS}, counts
    assert duplicates <= kills * (10 + 100)
