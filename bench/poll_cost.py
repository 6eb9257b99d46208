"""CPU per progress poll in the app's own process, with a profile of where it goes.

The viewers part (bench/viewers.py) measures what ten open report pages cost a send; this
says what one `GET /admin/issues/{id}/progress.json` of a signed-in viewer costs the
server, in CPU time (which moves far less with the machine's load than a rate), and why:
a pyinstrument profile of 300 more polls goes to bench/out/progress-profile.txt. The app
runs in process over ASGI on a fresh SQLite database, the issue a draft (the snapshot is
the same work as for a sending issue: `app/issues/progress.py`). The report page is
measured the same way, since each viewer loads it once.
Run alone: `python -m bench.poll_cost 300`.
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.infra import OUT
from bench.report import Results, Row

TOKEN = "bench-admin-token-" + "p" * 24
EMAIL, PASSWORD = "poll-viewer@example.org", "poll viewer password, long enough"


async def _cpu_ms(client: httpx.AsyncClient, path: str, count: int) -> float:
    for _ in range(10):  # warm-up
        await client.get(path)
    start = time.process_time()
    for _ in range(count):
        r = await client.get(path, headers={"Accept": "application/json"})
        assert r.status_code == 200, (path, r.status_code)
    return (time.process_time() - start) / count * 1000


async def poll_cost(count: int = 300) -> dict[str, Any]:
    """CPU ms per progress.json and per report page; the progress profile to bench/out/."""
    from pyinstrument import Profiler

    from app.accounts import service as accounts
    from app.config import Settings
    from app.main import create_app
    from app.migrate import upgrade
    from app.models import MailingList

    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/tidings.db"
        await asyncio.to_thread(upgrade, url)
        settings = Settings(
            database_url=url,
            var_dir=Path(tmp) / "var",
            admin_token=TOKEN,
            secret_key="bench-secret-key-" + "p" * 32,
            embedded_worker=False,
            public_url="http://news.example.org",
            smtp_url="smtp://127.0.0.1:9",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            async with app.state.sessionmaker() as session:
                await accounts.create_account(
                    session=session, email=EMAIL, role="viewer", password=PASSWORD
                )
                session.add(MailingList(slug="poll", name="Poll", description=""))
                await session.commit()
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://news.example.org"
            ) as c:
                made = await c.post(
                    "/api/v1/issues",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    json={"subject": "Poll", "lists": ["poll"], "body": "Hello"},
                )
                assert made.status_code == 201, made.text
                issue = made.json()["id"]
                form = await c.get("/admin/login")
                csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
                assert csrf, "no csrf_token on /admin/login"
                signed = await c.post(
                    "/admin/login",
                    data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf[1]},
                )
                assert signed.status_code == 303, signed.text
                progress = f"/admin/issues/{issue}/progress.json"
                figures = {
                    "progress_cpu_ms": await _cpu_ms(c, progress, count),
                    "report_cpu_ms": await _cpu_ms(
                        c, f"/admin/issues/{issue}/report", max(count // 5, 20)
                    ),
                }
                profiler = Profiler(interval=0.0005)
                profiler.start()
                for _ in range(count):
                    await c.get(progress)
                profiler.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "progress-profile.txt").write_text(profiler.output_text(unicode=False))
    return figures


async def measure_poll_cost(results: Results, count: int = 300) -> dict[str, Any]:
    figures = await poll_cost(count)
    results.raw["poll_cost"] = figures
    results.add(
        Row(
            "viewers",
            "server CPU per progress.json poll, in process",
            figures["progress_cpu_ms"],
            "ms",
            "",
            None,
            f"ten viewers, a poll a second each: {figures['progress_cpu_ms'] * 10:.0f} ms"
            f" of CPU a second; report page"
            f" {figures['report_cpu_ms']:.1f} ms; profile: bench/out/progress-profile.txt",
        )
    )
    return figures


if __name__ == "__main__":
    print(asyncio.run(poll_cost(int(sys.argv[1]) if len(sys.argv) > 1 else 300)))
