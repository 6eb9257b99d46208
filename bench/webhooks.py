"""Webhook delivery figures: events per second to a local receiver, and what one webhook
subscribed to `subscriber.created` adds to a public sign-up.

    .venv/bin/python -m bench.webhooks [--events 3000] [--signups 1000] [--no-postgres]

The receiver is uvicorn in a process of its own on 127.0.0.1 answering 200 to every
POST (and counting them), so the sender's process measures only the sender. The events
are written to the outbox in one transaction, then one WebhookSender (the one each
dispatcher runs, default concurrency) fans them out and delivers them; the rate is events
delivered (2xx recorded) per second of wall time. The sign-up cost is
signup.public_subscribe and its commit, timed in-process for new addresses, first with
no webhook, then with one subscribed to `subscriber.created` (the outbox row it adds).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.subscribers.signup import public_subscribe
from app.webhooks import events, service
from app.webhooks.models import WebhookDelivery
from app.webhooks.schemas import WebhookIn
from app.webhooks.sender import WebhookSender
from bench.infra import create_pg_database, drop_pg_database, free_port, pg_available
from bench.seed import migrate

_count = 0


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The receiver: 200 to every POST; GET answers how many it took."""
    global _count
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    if scope["method"] == "POST":
        _count += 1
    body = str(_count).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _start_receiver(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.webhooks:receiver_app", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env={**os.environ},
    )  # fmt: skip


async def _wait_up(url: str) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(100):
            try:
                await c.get(url)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise RuntimeError("the receiver did not start")


async def delivery_rate(url: str, n: int, receiver: str) -> dict[str, float]:
    settings = Settings(database_url=url, webhook_allow_private=True, secret_key="b" * 48)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker() as s, s.begin():
            data = WebhookIn(url=receiver, events=["subscriber.created"])
            await service.create(session=s, settings=settings, data=data)
        events.forget_subscriptions()
        async with sessionmaker() as s, s.begin():
            for i in range(n):
                await events.emit(s, "subscriber.created", {"id": i, "email": f"r{i}@example.org"})
        sender = WebhookSender(settings=settings, sessionmaker=sessionmaker, owner="bench")
        start = time.perf_counter()
        sender.start()
        delivered = 0
        while delivered < n:
            await asyncio.sleep(0.1)
            done = select(func.count()).where(WebhookDelivery.status == "delivered")
            async with sessionmaker() as s:
                delivered = int(await s.scalar(done) or 0)
        elapsed = time.perf_counter() - start
        await sender.stop()
        return {"events": n, "seconds": elapsed, "events_per_s": n / elapsed}
    finally:
        await engine.dispose()


async def signup_cost(url: str, n: int) -> dict[str, float]:
    settings = Settings(database_url=url, webhook_allow_private=True, secret_key="b" * 48)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO lists (slug, name, description, double_opt_in, public, created_at)"
                " VALUES ('open', 'Open', '', false, true, CURRENT_TIMESTAMP)"
            )

        async def run(tag: str) -> list[float]:
            times = []
            for i in range(n):
                start = time.perf_counter()
                async with engine.begin() as conn:
                    await public_subscribe(conn=conn, email=f"{tag}{i}@example.org", name=None,
                                           slugs=["open"], attributes={},
                                           check_deliverability=False)  # fmt: skip
                times.append(time.perf_counter() - start)
            return times

        events.forget_subscriptions()
        await run("warm")
        without = await run("none")
        async with sessionmaker() as s, s.begin():
            data = WebhookIn(url="http://127.0.0.1:9/", events=["subscriber.created"])
            await service.create(session=s, settings=settings, data=data)
        events.forget_subscriptions()
        with_hook = await run("hooked")
        a, b = statistics.median(without), statistics.median(with_hook)
        return {"signups": n, "median_ms_without": a * 1000, "median_ms_with": b * 1000,
                "added_ms": (b - a) * 1000}  # fmt: skip
    finally:
        await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--signups", type=int, default=1000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    port = free_port()
    receiver = f"http://127.0.0.1:{port}/hook"
    proc = _start_receiver(port)
    try:
        await _wait_up(receiver)
        backends = ["sqlite"] + ([] if args.no_postgres or await pg_available() else ["pg"])
        for backend in backends:
            for part in ("rate", "signup"):
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
                else:
                    url = await create_pg_database()
                try:
                    await migrate(url)
                    if part == "rate":
                        result = await delivery_rate(url, args.events, receiver)
                    else:
                        result = await signup_cost(url, args.signups)
                    print(backend, part, {k: round(v, 3) for k, v in result.items()}, flush=True)
                finally:
                    if backend == "pg":
                        await drop_pg_database(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    asyncio.run(main())
