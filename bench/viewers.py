"""What watching a send costs it: the same send with no viewer and with ten open report pages.

Issue 12: ten open report pages during a 100,000-recipient send must not lower the send rate
by more than 5%. One fresh PostgreSQL database with N subscribers, `tidings serve` (no
dispatcher) and one `tidings worker`, tracking off. The same issue is sent again and again
to the same list, in the order A B B A (A: nobody watching, B: ten viewers), so a drift of
the machine over the part falls on both sides alike; the rate of each round is kept, and
the spread of each side is reported beside the drop.

A viewer is what a browser with `app/console/static/progress.js` does: its own console
account signed in through the login form (so its own session cookie), the report page
loaded once, then its progress stream (`GET /admin/issues/{id}/progress`, server-sent
events, opened again whenever the server ends one) until the issue is no longer sending.
The server pushes all viewers one snapshot per issue refreshed once a second
(`app/issues/progress.py`) and checks each viewer's session once per stream, so what a
viewer adds is writing one small event a second.

The end of a round is watched by the bench with a primary-key read of `issues` on a
connection of its own (twice a second), not through the app, so the bench itself is not
a viewer; the end time is the issue's `finished_at`.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.dispatch import _wait_workers
from bench.infra import (
    Processes,
    _asyncpg_dsn,
    cpu_seconds,
    create_pg_database,
    drop_pg_database,
    group_cpu_seconds,
)
from bench.report import Results, Row
from bench.seed import migrate, seed
from bench.stack import Stack, make_env

VIEWERS = 10
PASSWORD = "viewer bench password, long enough"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)"')
LIVE = ("sending", "scheduled", "paused")


async def _accounts(url: str, tmp: Path, count: int) -> list[str]:
    """`count` viewer accounts with a password, made as `tidings user add` makes them."""
    from app.accounts.cli import add_user
    from app.config import Settings

    settings = Settings(
        database_url=url,
        var_dir=tmp,
        secret_key="bench-" + "v" * 40,
        embedded_worker=False,
        public_url="http://news.example.org",
    )
    emails = [f"viewer{i}@example.org" for i in range(count)]
    for email in emails:
        await add_user(settings, email, "viewer", PASSWORD)
    return emails


async def _sign_in(base: str, email: str) -> httpx.AsyncClient:
    """A client with a console session of its own, as after the login form."""
    client = httpx.AsyncClient(base_url=base, timeout=60)
    form = await client.get("/admin/login")
    token = _CSRF_FIELD.search(form.text)
    assert token, "no csrf_token on /admin/login"
    r = await client.post(
        "/admin/login", data={"email": email, "password": PASSWORD, "csrf_token": token[1]}
    )
    if r.status_code != 303:
        raise RuntimeError(f"sign-in of {email}: {r.status_code} {r.text[:200]}")
    return client


async def _watch(client: httpx.AsyncClient, issue_id: int, stop: asyncio.Event) -> list[float]:
    """One open report page: loaded once, then its progress stream followed as progress.js
    follows it (server-sent events, opened again when the server ends one, until the issue
    stops moving). One entry per update: how late it came, in ms (the first of a stream:
    from opening it; the next ones: past the one-second tick)."""
    page = await client.get(f"/admin/issues/{issue_id}/report")
    page.raise_for_status()
    late: list[float] = []
    live = True
    while live and not stop.is_set():
        last = time.perf_counter()
        gap = 0.0  # the first event of a stream is due at once
        async with client.stream("GET", f"/admin/issues/{issue_id}/progress",
                                 headers={"Accept": "text/event-stream"}) as r:  # fmt: skip
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                now = time.perf_counter()
                late.append(max(0.0, (now - last - gap) * 1000))
                last, gap = now, 1.0
                if json.loads(line[6:])["status"] not in LIVE:
                    live = False
                    break
                if stop.is_set():
                    break
    return late


async def _wait_finished(url: str, stack: Stack, issue_id: int, timeout: float) -> float:
    """The issue's finished_at (epoch seconds), read from the database twice a second."""
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    deadline = time.monotonic() + timeout
    try:
        while True:
            row = await conn.fetchrow(
                "SELECT status, finished_at FROM issues WHERE id = $1", issue_id
            )
            if row["status"] not in LIVE:
                if row["finished_at"] is None:
                    raise RuntimeError(f"issue {issue_id} ended {row['status']}, unfinished")
                return float(row["finished_at"].timestamp())
            if time.monotonic() > deadline:
                raise TimeoutError(f"issue {issue_id} still {row['status']} after {timeout} s")
            if any(p.poll() is not None for p in [stack.server, *stack.workers] if p):
                raise RuntimeError("a Tidings process exited; see bench/out/viewers-*")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _db_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of each backend of this database (the bench's own excluded)."""
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    found: dict[int, float] = {}
    for (pid,) in pids:
        try:
            found[pid] = cpu_seconds(pid)
        except OSError:  # gone since, or not on this machine
            continue
    return found


def _cpu_since(before: dict[int, float], after: dict[int, float]) -> float:
    """Backends' CPU over an interval: one that ended meanwhile is lost, a new one counted whole."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


async def _round(
    url: str, stack: Stack, viewers: list[httpx.AsyncClient], subscribers: int
) -> dict[str, Any]:
    issue_id = await stack.create_issue(track_opens=False, track_clicks=False)
    assert stack.server is not None
    cpu0 = cpu_seconds(stack.server.pid)
    worker0 = sum(group_cpu_seconds(w.pid) for w in stack.workers)
    db0 = await _db_cpu(url)
    t0 = time.time()
    send_s, answer = await stack.send(issue_id)
    stop = asyncio.Event()
    watchers = [asyncio.create_task(_watch(c, issue_id, stop)) for c in viewers]
    try:
        end = await _wait_finished(url, stack, issue_id, timeout=max(600, subscribers / 50))
    finally:
        stop.set()
        polls = await asyncio.gather(*watchers, return_exceptions=True)
    errors = [p for p in polls if isinstance(p, BaseException)]
    if errors:
        raise RuntimeError(f"a viewer failed: {errors[0]!r}")
    server_cpu = cpu_seconds(stack.server.pid) - cpu0
    worker_cpu = sum(group_cpu_seconds(w.pid) for w in stack.workers) - worker0
    db_cpu = _cpu_since(db0, await _db_cpu(url))
    stats = await stack.stats(issue_id)
    latencies = sorted(ms for p in polls if isinstance(p, list) for ms in p)
    return {
        "issue": issue_id,
        "viewers": len(viewers),
        "recipients": answer.get("recipients"),
        "sent": stats["sent"],
        "seconds": end - t0,
        "send_call_s": send_s,
        "rate": stats["sent"] / max(end - t0, 1e-3),
        "server_cpu_s": server_cpu,
        "worker_cpu_s": worker_cpu,
        "db_cpu_s": db_cpu,
        "polls": len(latencies),
        "poll_p95_ms": latencies[int(0.95 * (len(latencies) - 1))] if latencies else None,
    }


async def measure_viewers(
    results: Results,
    *,
    procs: Processes,
    sink_port: int,
    subscribers: int,
    order: str = "ABBA",
) -> dict[str, Any]:
    """The send rate with no viewer (A) and with ten (B), rounds in `order`; the drop."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-viewers-"))
    url = await create_pg_database()
    stack: Stack | None = None
    clients: list[httpx.AsyncClient] = []
    rounds: list[dict[str, Any]] = []
    try:
        await migrate(url)
        await seed(url, subscribers=subscribers)
        emails = await _accounts(url, tmp, VIEWERS)
        env = make_env(
            database_url=url,
            sink_port=sink_port,
            var_dir=tmp,
            embedded_worker=False,
            tracking="off",
        )
        stack = await Stack(procs, env, "viewers").start()
        stack.start_workers(1)
        await _wait_workers(url, 1)
        base = f"http://127.0.0.1:{stack.port}"
        clients = [await _sign_in(base, e) for e in emails]
        for n, side in enumerate(order):
            figures = await _round(url, stack, clients if side == "B" else [], subscribers)
            rounds.append(figures | {"side": side})
            print(
                f"  round {n + 1} ({side}, {figures['viewers']} viewers): "
                f"{figures['rate']:,.0f} msg/s, {figures['polls']} polls"
            )
    finally:
        for c in clients:
            await c.aclose()
        if stack is not None:
            await stack.stop()
        await drop_pg_database(url)
    return _report(results, rounds, subscribers)


def _report(results: Results, rounds: list[dict[str, Any]], subscribers: int) -> dict[str, Any]:
    a = [r["rate"] for r in rounds if r["side"] == "A"]
    b = [r["rate"] for r in rounds if r["side"] == "B"]
    ma, mb = statistics.mean(a), statistics.mean(b)
    drop = (1 - mb / ma) * 100

    def spread(xs: list[float]) -> float:
        return (max(xs) - min(xs)) / statistics.mean(xs) * 100

    sequence = " ".join(f"{r['side']} {r['rate']:,.0f}" for r in rounds)
    whole = all(r["sent"] == r["recipients"] == subscribers for r in rounds)
    polls = [r for r in rounds if r["side"] == "B"]
    p95 = max(r["poll_p95_ms"] or 0 for r in polls)
    cpu_a = statistics.mean(r["server_cpu_s"] for r in rounds if r["side"] == "A")
    cpu_b = statistics.mean(r["server_cpu_s"] for r in polls)

    def side_cpu(side: str, *keys: str) -> float:
        return statistics.mean(sum(r[k] for k in keys) for r in rounds if r["side"] == side)

    # What the viewers add (server and database), against what the whole send costs.
    extra = side_cpu("B", "server_cpu_s", "db_cpu_s") - side_cpu("A", "server_cpu_s", "db_cpu_s")
    send_cpu = side_cpu("A", "server_cpu_s", "db_cpu_s", "worker_cpu_s")
    per_poll = extra / max(statistics.mean(r["polls"] for r in polls), 1) * 1000
    results.add(
        Row(
            "viewers",
            f"send rate, no viewer, {subscribers:,} recipients, 1 worker",
            ma,
            "msg/s",
            "",
            None,
            f"spread {spread(a):.1f}% over {len(a)} rounds",
        )
    )
    results.add(
        Row(
            "viewers",
            f"send rate, {VIEWERS} report pages open",
            mb,
            "msg/s",
            "",
            None,
            f"spread {spread(b):.1f}%; {sum(r['polls'] for r in polls):,} progress updates"
            f" (server-sent events), p95 {p95:.0f} ms late",
        )
    )
    results.add(
        Row(
            "viewers",
            f"send rate drop with {VIEWERS} viewers",
            drop,
            "%",
            "<= 5",
            drop <= 5 and whole,
            f"rounds: {sequence}; server CPU per round {cpu_a:.1f} s -> {cpu_b:.1f} s"
            + ("" if whole else "; NOT ALL SENT"),
        )
    )
    results.add(
        Row(
            "viewers",
            f"CPU the {VIEWERS} viewers add, share of the send's CPU",
            extra / send_cpu * 100,
            "%",
            "",
            None,
            f"+{extra:.1f} s (server and database) per round over {send_cpu:.1f} s of worker,"
            f" server and database CPU; {per_poll:.1f} ms per poll; less noisy than the rates",
        )
    )
    figures = {
        "rounds": rounds,
        "drop_percent": drop,
        "rate_a": ma,
        "rate_b": mb,
        "extra_cpu_s": extra,
        "send_cpu_s": send_cpu,
        "cpu_ms_per_poll": per_poll,
    }
    results.raw["viewers"] = figures
    return figures
