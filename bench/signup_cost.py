"""CPU per public sign-up in the app's own process, with a profile of where it goes.

wrk's figure (bench/api.py) moves with whatever else the two cores are doing; the CPU
time this process spends per `POST /api/v1/subscribe` does not, and it is what bounds
requests/s per core: 1,500 req/s on two cores shared with PostgreSQL and wrk needs well
under a millisecond of app CPU per request. The app runs in process over ASGI (no HTTP
parsing, which uvicorn's httptools does in C); confirmations go to smtp-sink.
Run alone: `python -m bench.signup_cost 3000`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.infra import OUT, create_pg_database, drop_pg_database
from bench.report import Results, Row
from bench.seed import LIST_SLUG, migrate, seed


async def _signups(client: httpx.AsyncClient, start: int, count: int) -> None:
    for i in range(start, start + count):
        r = await client.post(
            "/api/v1/subscribe",
            json={"email": f"cost{i}@example.com", "name": "Load Test", "lists": [LIST_SLUG]},
        )
        assert r.status_code == 202, r.text


async def measure_signup_cost(
    results: Results, *, sink_port: int, count: int = 2000
) -> dict[str, Any]:
    """CPU µs per sign-up (PostgreSQL, double opt-in list), then a pyinstrument profile."""
    from pyinstrument import Profiler

    from app.config import Settings
    from app.main import create_app

    url = await create_pg_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-signup-"))
    try:
        await migrate(url)
        await seed(url, subscribers=10_000, double_opt_in=True)
        settings = Settings(
            database_url=url,
            smtp_url=f"smtp://127.0.0.1:{sink_port}",
            var_dir=tmp / "var",
            secret_key="bench-secret-key-" + "x" * 32,
            public_url="http://tidings.test",
            embedded_worker=False,
            public_rate_limit=10**9,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await _signups(client, 0, 200)  # warm: pools, prepared statements, templates
                cpu, wall = time.process_time(), time.perf_counter()
                await _signups(client, 1000, count)
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                profiler = Profiler(interval=0.0005, async_mode="enabled")
                with profiler:
                    await _signups(client, 10**6, count // 2)
                OUT.mkdir(parents=True, exist_ok=True)
                (OUT / "signup-profile.txt").write_text(
                    profiler.output_text(unicode=True, show_all=False)
                )
    finally:
        await drop_pg_database(url)
    figures = {"count": count, "cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6}
    results.raw["signup_cost"] = figures
    results.add(
        Row(
            "api",
            "POST /api/v1/subscribe, app CPU per request (PostgreSQL, in process)",
            figures["cpu_us"],
            "us",
            note=f"one at a time; {figures['wall_us']:.0f} us wall; bench/out/signup-profile.txt",
        )
    )
    return figures


if __name__ == "__main__":  # pragma: no cover - a tool
    from bench.infra import Processes, start_sink

    async def main() -> None:
        procs = Processes()
        try:
            port = start_sink(procs)
            results = Results(options={})
            print(await measure_signup_cost(results, sink_port=port, count=int(sys.argv[1])))
        finally:
            procs.stop_all()

    asyncio.run(main())
