"""PostgreSQL stopped mid-send and started again: workers and API recover, nothing is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
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
from tests.reliability.pgcluster import PgCluster
from tests.smtp import SMTPServer

pytestmark = pytest.mark.slow

RECIPIENTS = 3000
OUTAGE = 6.0  # seconds the database is down


async def test_database_outage_mid_send(
    private_db: str, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """Stop the cluster for several seconds; /readyz says 503 quickly; everything resumes."""
    smtp = SMTPServer().start()
    emails = await seed(private_db, RECIPIENTS)
    # Leases longer than the outage: a worker that lives through it keeps what it holds.
    env = worker_env(private_db, smtp.url, tmp_path / "var", lease_seconds=30)
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log") for i in range(2)]
    readyz_while_down: list[tuple[int, float]] = []
    try:
        async with api(private_db, smtp.url, tmp_path / "var") as client:
            issue_id = await create_issue(client)
            for w in workers:
                w.start()
            await start_send(client, issue_id)

            async def a_third_sent() -> bool:
                return sum(received_counts(smtp).values()) >= RECIPIENTS // 3

            assert await wait_for(a_third_sent, timeout=60), workers[0].tail()
            await asyncio.to_thread(pg_cluster.stop, "fast")
            down_at = time.monotonic()
            try:
                for _ in range(3):
                    started = time.monotonic()
                    try:
                        r = await asyncio.wait_for(client.get("/readyz"), timeout=15)
                        readyz_while_down.append((r.status_code, time.monotonic() - started))
                    except TimeoutError:
                        readyz_while_down.append((0, time.monotonic() - started))
                    await asyncio.sleep(1)
                await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
            finally:
                await asyncio.to_thread(pg_cluster.start)
            outage = time.monotonic() - down_at
            alive_after = [w.alive for w in workers]

            async def ready() -> bool:
                return (await client.get("/readyz")).status_code == 200

            api_back = await wait_for(ready, timeout=30)
            delivered = await wait_for(all_received(smtp, emails), timeout=180)

            async def finished() -> bool:
                r = await client.get(f"/api/v1/issues/{issue_id}/stats")
                return r.status_code == 200 and r.json()["status"] == "sent"

            done = await wait_for(finished, timeout=60)
            counts = await delivery_counts(private_db, issue_id)
    finally:
        for w in workers:
            w.stop()
        smtp.stop()
    got = received_counts(smtp)
    missing = [e for e in emails if not got[e]]
    duplicates = sum(n - 1 for n in got.values() if n > 1)
    print(
        f"\nDB outage: {outage:.1f} s survived; /readyz while down: {readyz_while_down}; "
        f"{len(missing)} missing, {duplicates} duplicates; deliveries {counts}"
    )
    assert all(code == 503 for code, _ in readyz_while_down), readyz_while_down
    assert alive_after == [True, True], [w.tail() for w in workers]
    assert api_back
    assert delivered and not missing, (missing[:5], workers[0].tail())
    assert done and counts == {"sent": RECIPIENTS}, counts
    assert duplicates == 0


async def test_api_answers_503_not_hang_when_database_is_down(
    private_db: str, pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """While the database is down, /readyz is 503, /healthz 200, and API calls fail cleanly."""
    smtp_url = "smtp://127.0.0.1:9"
    async with api(private_db, smtp_url, tmp_path / "var") as client:
        assert (await client.get("/readyz")).status_code == 200
        await asyncio.to_thread(pg_cluster.stop, "fast")
        try:
            r = await asyncio.wait_for(client.get("/readyz"), timeout=15)
            assert r.status_code == 503 and r.json()["status"] == "unavailable"
            assert (await client.get("/healthz")).status_code == 200
            # Over a real server an unhandled error is a 500; the point is that it answers.
            plain = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=client.app, raise_app_exceptions=False),
                base_url="http://tidings.test",
                headers=client.headers,
            )
            try:
                r = await asyncio.wait_for(plain.get("/api/v1/issues"), timeout=30)
            except TimeoutError:
                pytest.fail("GET /api/v1/issues hung while the database was down")
            finally:
                await plain.aclose()
            assert r.status_code in (500, 503), r.status_code
        finally:
            await asyncio.to_thread(pg_cluster.start)

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        assert await wait_for(ready, timeout=30)
        assert (await client.get("/api/v1/issues")).status_code == 200
