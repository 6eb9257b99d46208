"""Median answer time of the public sign-up for known and unknown addresses (issue 16).

Not a test (no timing assertions in the suite): run it by hand on an idle machine,

    .venv/bin/python -m tests.subscribers.measure_signup_timing [N] [sqlite|postgres] [direct]

It serves the app with uvicorn on loopback, creates a single opt-in list and N known
(confirmed) subscribers, then posts N sign-ups of known and N of unknown addresses,
interleaved, over one keep-alive connection, and prints each kind's median and p90.
With `direct`, it times signup.public_subscribe and its commit in-process instead (no
HTTP), which a loaded machine disturbs less.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn

from app.config import Settings
from app.db import make_engine
from app.main import create_app
from app.migrate import upgrade
from app.subscribers.signup import public_subscribe
from tests.conftest import create_pg_database, drop_pg_database
from tests.smtp import free_port


async def _serve(settings: Settings, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    return server, task


def _report(title: str, times: dict[str, list[float]]) -> None:
    print(title)
    for kind, values in times.items():
        values.sort()
        median, p90 = statistics.median(values), values[int(len(values) * 0.9)]
        print(f"  {kind:8} median {median * 1000:.2f} ms   p90 {p90 * 1000:.2f} ms")
    known, unknown = (statistics.median(times[k]) for k in ("known", "unknown"))
    print(f"  difference of the medians: {(unknown - known) * 1000:+.2f} ms")


async def _database(backend: str, tmp: Path) -> str:
    if backend == "postgres":
        url = await create_pg_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp}/timing.db"
    await asyncio.to_thread(upgrade, url)
    return url


async def measure_direct(n: int, backend: str) -> None:
    """The sign-up's statements and commit alone (a bare engine.begin(), as before 0003,
    so the same script measures older trees too)."""
    url = await _database(backend, Path(tempfile.mkdtemp()))
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO lists (slug, name, description, double_opt_in, public, created_at)"
                " VALUES ('news', 'News', '', false, true, CURRENT_TIMESTAMP)"
            )

        async def sign_up(email: str) -> float:
            start = time.perf_counter()
            async with engine.begin() as conn:
                await public_subscribe(conn=conn, email=email, name="", slugs=["news"],
                                       attributes={}, check_deliverability=False)  # fmt: skip
            return time.perf_counter() - start

        for i in range(n):
            await sign_up(f"known{i}@example.org")
        times: dict[str, list[float]] = {"known": [], "unknown": []}
        for i in range(n):
            for kind in ("known", "unknown"):
                times[kind].append(await sign_up(f"{kind}{i}@example.org"))
        _report(f"{backend}, {n} sign-ups of each kind, in-process (no HTTP)", times)
    finally:
        await engine.dispose()
        if backend == "postgres":
            await drop_pg_database(url)


async def measure(n: int, backend: str) -> None:
    tmp = Path(tempfile.mkdtemp())
    url = await _database(backend, tmp)
    settings = Settings(
        database_url=url, var_dir=tmp / "var", admin_token="t", secret_key="k" * 40,
        smtp_url=f"outbox://{tmp}/outbox", embedded_worker=False, public_rate_limit=10**9,
    )  # fmt: skip
    port = free_port()
    server, task = await _serve(settings, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer t"}) as c:
            r = await c.post("/api/v1/lists", json={"slug": "news", "name": "News",
                                                    "double_opt_in": False})  # fmt: skip
            assert r.status_code == 201, r.text
            for i in range(n):
                body = {"email": f"known{i}@example.org", "lists": ["news"]}
                assert (await c.post("/api/v1/subscribe", json=body)).status_code == 202
            times: dict[str, list[float]] = {"known": [], "unknown": []}
            for i in range(n):
                for kind in ("known", "unknown"):
                    body = {"email": f"{kind}{i}@example.org", "lists": ["news"]}
                    start = time.perf_counter()
                    r = await c.post("/api/v1/subscribe", json=body)
                    times[kind].append(time.perf_counter() - start)
                    assert r.json() == {"status": "confirmed"}
        _report(f"{backend}, {n} sign-ups of each kind, one keep-alive connection", times)
    finally:
        server.should_exit = True
        await task
        if backend == "postgres":
            await drop_pg_database(url)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    backend = sys.argv[2] if len(sys.argv) > 2 else "sqlite"
    run = measure_direct if "direct" in sys.argv[3:] else measure
    asyncio.run(run(count, backend))
