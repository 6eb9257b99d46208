"""CPU per public sign-up in the app's own process, with a profile of where it goes.

wrk's figure (bench/api.py) moves with whatever else the two cores are doing; the CPU
time this process spends per `POST /api/v1/subscribe` does not, and it is what bounds
requests/s per core: 1,500 req/s on two cores shared with PostgreSQL and wrk needs well
under a millisecond of app CPU per request. The app runs in process over ASGI (no HTTP
parsing, which uvicorn's httptools does in C); confirmations go to smtp-sink.

Two apps on one database, the same but for the fast path (app/subscribers/signup_fast.py):
"route" has it taken out, so every sign-up goes through the middleware and FastAPI's
route as before. Each is measured one sign-up at a time and with 64 at once (where group
commit batches them), in interleaved rounds so that load from elsewhere on the machine
falls on all four alike. The client's own CPU (httpx) is in every figure.
Run alone: `python -m bench.signup_cost 2000`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.infra import OUT, create_pg_database, drop_pg_database
from bench.report import Results, Row
from bench.seed import LIST_SLUG, migrate, seed

_numbers = itertools.count()
ROUNDS = 4
VARIANTS = (("route", 1), ("fast", 1), ("route", 64), ("fast", 64))


async def _signups(client: httpx.AsyncClient, count: int, concurrency: int) -> None:
    async def one() -> None:
        i = next(_numbers)
        r = await client.post(
            "/api/v1/subscribe",
            json={"email": f"cost{i}@example.com", "name": "Load Test", "lists": [LIST_SLUG]},
        )
        assert r.status_code == 202, r.text

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    share = count // concurrency
    await asyncio.gather(*(worker(share) for _ in range(concurrency)))


def _app(settings: Any, *, fast: bool) -> Any:
    from app.main import create_app
    from app.subscribers.signup_fast import SignupFastPath

    app = create_app(settings)
    if not fast:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not SignupFastPath]
    return app


async def measure_signup_cost(
    results: Results, *, sink_port: int, count: int = 2000
) -> dict[str, Any]:
    """CPU µs per sign-up (PostgreSQL, double opt-in list) by variant, then a profile."""
    from pyinstrument import Profiler

    from app.config import Settings

    url = await create_pg_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-signup-"))
    cpu = {v: 0.0 for v in VARIANTS}
    wall = {v: 0.0 for v in VARIANTS}
    batches: dict[str, Any] = {}
    try:
        await migrate(url)
        await seed(url, subscribers=10_000, double_opt_in=True)
        settings = Settings(
            database_url=url,
            smtp_url=f"smtp://127.0.0.1:{sink_port}?max_connections=20",
            var_dir=tmp / "var",
            secret_key="bench-secret-key-" + "x" * 32,
            public_url="http://tidings.test",
            embedded_worker=False,
            public_rate_limit=10**9,
        )
        apps = {"route": _app(settings, fast=False), "fast": _app(settings, fast=True)}
        async with contextlib.AsyncExitStack() as stack:
            clients = {}
            for name, app in apps.items():
                await stack.enter_async_context(app.router.lifespan_context(app))
                transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
                clients[name] = await stack.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="http://t")
                )
            for name, c in VARIANTS:  # warm: pools, prepared statements, templates
                await _signups(clients[name], 200, c)
            per_round = max(64, count // ROUNDS)
            for _ in range(ROUNDS):
                for variant in VARIANTS:
                    c0, w0 = time.process_time(), time.perf_counter()
                    await _signups(clients[variant[0]], per_round, variant[1])
                    cpu[variant] += time.process_time() - c0
                    wall[variant] += time.perf_counter() - w0
            group = apps["fast"].state.signup_batches
            batches = {"batches": group.batches, "signups": group.committed}
            profiler = Profiler(interval=0.0005, async_mode="enabled")
            with profiler:
                await _signups(clients["fast"], per_round, 64)
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / "signup-profile.txt").write_text(
                profiler.output_text(unicode=True, show_all=False)
            )
    finally:
        await drop_pg_database(url)
    n = per_round * ROUNDS
    figures: dict[str, Any] = {"count": n, **batches}
    for (name, c), seconds in cpu.items():
        figures[f"{name}_c{c}_cpu_us"] = seconds / n * 1e6
        figures[f"{name}_c{c}_wall_us"] = wall[name, c] / n * 1e6
    results.raw["signup_cost"] = figures
    for name, c in VARIANTS:
        what = "fast path" if name == "fast" else "through the middleware and route"
        results.add(
            Row(
                "api",
                f"POST /api/v1/subscribe, app CPU per request, {what}, {c} at a time",
                figures[f"{name}_c{c}_cpu_us"],
                "us",
                note=f"PostgreSQL, in process; {figures[f'{name}_c{c}_wall_us']:.0f} us wall"
                + ("; bench/out/signup-profile.txt" if (name, c) == ("fast", 64) else ""),
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
