"""The audience at scale: search, list counts and the console's pages over N subscribers.

A fresh PostgreSQL database is seeded set-based (bench/seed.py) with N subscribers, then
the app runs in this process (httpx over ASGI: no network, no server process, so the
figures are the app's and the database's, not wrk's) and each request is repeated; the
p95 of each is held to issue 11's 150 ms (pages) and issue 15's 50 ms (search). The
console is signed in through its own login form as an owner made by the accounts service.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.infra import ADMIN_TOKEN, _asyncpg_dsn, create_pg_database, drop_pg_database
from bench.report import Results, Row
from bench.seed import migrate, seed

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "bench password, long enough"
Fetch = Callable[[], Awaitable[httpx.Response]]


async def _app(url: str, tmp: Path) -> tuple[Any, Any]:
    from app.config import Settings
    from app.main import create_app

    settings = Settings(
        database_url=url,
        smtp_url="smtp://127.0.0.1:9",  # never used: nothing here sends
        var_dir=tmp / "var",
        admin_token=ADMIN_TOKEN,
        secret_key="bench-secret-key-" + "x" * 32,
        public_url="http://tidings.test",
        embedded_worker=False,
    )
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    return app, lifespan


async def _console(app: Any) -> httpx.AsyncClient:
    from app.accounts import service

    async with app.state.sessionmaker() as session:
        await service.create_account(
            session=session, email="owner@example.org", role="owner", password=PASSWORD
        )
        await session.commit()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)),
        base_url="http://tidings.test",
    )
    form = await client.get("/admin/login")
    match = CSRF.search(form.text)
    assert match, "no CSRF token on the login page"
    signed = await client.post(
        "/admin/login",
        data={"email": "owner@example.org", "password": PASSWORD, "csrf_token": match.group(1)},
    )
    assert signed.status_code == 303, signed.text[:300]
    return client


async def _p95(fn: Fetch, repeat: int) -> dict[str, float]:
    await fn()  # the first call warms caches and prepared statements
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = await fn()
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (response.status_code, response.text[:300])
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    return {"p50_ms": statistics.median(times), "p95_ms": p95, "n": repeat}


async def _search_plan(url: str, needle: str) -> str:
    """EXPLAIN ANALYZE of the search the API sends, for the record in results.json."""
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT id FROM subscribers WHERE id > 0 AND"
            " (email_key LIKE '%' || $1 || '%' OR lower(name) LIKE '%' || $1 || '%')"
            " ORDER BY id LIMIT 51",
            needle,
        )
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def measure_audience(results: Results, *, subscribers: int, repeat: int = 40) -> None:
    """p95 of the subscriber table, searches, a person, the lists and the dashboard."""
    url = await create_pg_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-audience-"))
    app = lifespan = None
    try:
        await migrate(url)
        await seed(url, subscribers=subscribers)
        conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
        try:  # settled, as a database is some time after its rows came: visibility map, GIN
            await conn.execute("VACUUM ANALYZE subscribers, subscriptions")
        finally:
            await conn.close()
        app, lifespan = await _app(url, tmp)
        api = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 5000)),
            base_url="http://tidings.test",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        console = await _console(app)
        person = subscribers // 2 or 1
        # Seeded names are 'Reader Nümber i' and addresses 'reader<i>@example.com': a rare
        # substring of each, a common one (every row matches), and a short one.
        rare_address, rare_name = f"er{subscribers - 7}@ex", f"nümber {subscribers // 3}"

        def get(client: httpx.AsyncClient, path: str, q: str | None = None) -> Fetch:
            params = {"q": q, "limit": 50} if q else {}
            return lambda: client.get(path, params=params)

        subs = "/api/v1/subscribers"
        cases: list[tuple[str, str, Fetch, float]] = [
            ("api", "subscribers, first page of 50", get(api, subs + "?limit=50"), 150),
            ("api", f"search {rare_address!r} (address)", get(api, subs, rare_address), 50),
            ("api", f"search {rare_name!r} (name)", get(api, subs, rare_name), 50),
            ("api", "search 'example' (every row)", get(api, subs, "example"), 50),
            ("api", "search 'r9' (2 characters)", get(api, subs, "r9"), 50),
            ("api", "one subscriber", get(api, f"{subs}/{person}"), 150),
            ("api", "lists with counts", get(api, "/api/v1/lists"), 150),
            ("console", "subscribers table", get(console, "/admin/subscribers"), 150),
            ("console", "subscribers table, a search",
             get(console, "/admin/subscribers", rare_name), 150),
            ("console", "a person's page", get(console, f"/admin/subscribers/{person}"), 150),
            ("console", "lists page", get(console, "/admin/lists"), 150),
            ("console", "dashboard", get(console, "/admin"), 150),
        ]  # fmt: skip
        figures: dict[str, Any] = {"subscribers": subscribers}
        for part, what, fn, target in cases:
            got = await _p95(fn, repeat)
            figures[what] = got
            results.add(
                Row(
                    f"audience-{part}",
                    f"{what}, {subscribers:,} subscribers",
                    got["p95_ms"],
                    "ms p95",
                    f"< {target:.0f} ms",
                    got["p95_ms"] < target,
                    f"p50 {got['p50_ms']:.1f} ms, {repeat} requests in process",
                )
            )
        figures["plan_rare_name"] = await _search_plan(url, rare_name)
        figures["plan_common"] = await _search_plan(url, "example")
        results.raw["audience"] = figures
        await api.aclose()
        await console.aclose()
    finally:
        if lifespan is not None:
            await lifespan.__aexit__(None, None, None)
        await drop_pg_database(url)
