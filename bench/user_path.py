"""The user's path: import through the API, then send at once, a newsletter of the real kind.

`make bench` otherwise seeds subscribers set-based and settles the database (VACUUM
ANALYZE), which a user never does. Here, on a fresh PostgreSQL database: N subscribers
go in through `POST /api/v1/subscribers/import` (a CSV body), an issue of a long
newsletter (about 13 KB of Markdown: ten sections, nested lists, links, images) is
created and `POST /send` follows at once, with one `tidings worker` sending into
smtp-sink. smtp-source is measured at the same size in the same run, for the ratio. The
claim query's plan right after the fan-out is kept in results.json, and again after an
ANALYZE of deliveries, to show whether the planner's view of that table matters.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.infra import (
    Processes,
    _asyncpg_dsn,
    create_pg_database,
    drop_pg_database,
    smtp_source_rate,
)
from bench.report import Results, Row
from bench.seed import LIST_SLUG, migrate, seed
from bench.stack import Stack, make_env

# About 40 KB as sent (HTML and text parts, quoted-printable): smtp-source sends this size.
SENT_BYTES = 40 * 1024

CLAIM = (
    "SELECT id FROM deliveries WHERE issue_id = $1 AND status = 'queued'"
    " AND next_attempt_at <= now() LIMIT 200 FOR UPDATE SKIP LOCKED"
)


def newsletter() -> str:
    """Ten sections of a partnership's newsletter: headings, paragraphs, nested lists, links."""
    parts = [
        "# Partnership news, winter edition\n",
        "Hello {{ subscriber.name }}, here is the news.\n",
    ]
    for n in range(1, 11):
        parts.append(f"\n## {n}. Projects of the quarter, part {n}\n")
        parts.append(
            "The working group met three times this quarter. The minutes are on the "
            f"[partnership site](https://partnership.example.org/minutes/{n}) and the next "
            "meeting is open to everyone who lives or works in the district. We heard from "
            "residents, local businesses and the schools about what the plan should keep.\n"
        )
        parts.append(f"\n![Photo of project {n}](https://partnership.example.org/img/{n}.jpg)\n\n")
        for item in range(3):
            owner = ("council", "trust", "board")[item]
            parts.append(f"- Action {n}.{item + 1}: *owner* the {owner}\n")
            parts.append(f"  - due by the end of month {item + 2}, budget agreed\n")
            parts.append(f"  - progress: [report](https://partnership.example.org/r/{n}/{item})\n")
        parts.append(
            "\nThe budget for the year was agreed at the last board meeting, with a reserve for "
            "the projects that the residents' survey put first: the play area, the crossing "
            "outside the primary school, and longer opening hours at the community centre. "
            "Each of these has a named lead and a date, listed above.\n"
        )
        parts.append(
            "\nVolunteers are still wanted for the spring clean-up, the library evenings and "
            "the youth football sessions; reply to this email and we will put you in touch.\n"
        )
    parts.append("\n---\nYou get this because you signed up at a partnership event.\n")
    return "".join(parts)


def csv_body(rows: int) -> bytes:
    lines = ["email,name,city"]
    lines += [f"Imp.Reader{i}@Example.com,Reader {i},Leeds" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


async def _plan(url: str, issue_id: int, *, analyze: bool) -> str:
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        if analyze:
            await conn.execute("ANALYZE deliveries")
        rows = await conn.fetch("EXPLAIN " + CLAIM, issue_id)
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def _last_analyze(url: str) -> dict[str, str | None]:
    """When the import's own ANALYZE ran (app/subscribers/importer.py), per table."""
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT relname, last_analyze FROM pg_stat_user_tables"
            " WHERE relname IN ('subscribers', 'subscriptions')"
        )
        return {r[0]: r[1] and r[1].isoformat() for r in rows}
    finally:
        await conn.close()


async def measure_user_path(
    results: Results, *, procs: Processes, sink_port: int, subscribers: int
) -> dict[str, Any]:
    """Import N through the API, send at once with one worker; msg/s and the ratio."""
    body = newsletter()
    wire = smtp_source_rate(sink_port, size=SENT_BYTES, count=20_000)
    url = await create_pg_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-user-path-"))
    stack: Stack | None = None
    try:
        await migrate(url)
        await seed(url, subscribers=0)
        env = make_env(database_url=url, sink_port=sink_port, var_dir=tmp, embedded_worker=False)
        stack = await Stack(procs, env, "user-path").start()
        stack.start_workers(1)
        start = time.perf_counter()
        r = await stack.api.post(
            "/api/v1/subscribers/import",
            params={"list": LIST_SLUG},
            content=csv_body(subscribers),
            headers={"content-type": "text/csv"},
        )
        r.raise_for_status()
        import_s = time.perf_counter() - start
        imported = r.json()
        issue_id = await stack.create_issue(body)
        t0 = time.time()
        send_s, answer = await stack.send(issue_id)
        plan_fresh = await _plan(url, issue_id, analyze=False)
        plan_analyzed = await _plan(url, issue_id, analyze=True)  # while the queue is full
        stats = await stack.wait_sent(issue_id, timeout=max(600, subscribers / 50))
        finished = stats.get("finished_at")
        end = datetime.fromisoformat(finished).timestamp() if finished else time.time()
        rate = (stats.get("sent") or 0) / max(end - t0, 1e-3)
        analyzed = await _last_analyze(url)
    finally:
        if stack is not None:
            await stack.stop()
        await drop_pg_database(url)
    figures = {
        "subscribers": subscribers,
        "markdown_bytes": len(body.encode()),
        "import": imported | {"seconds": import_s},
        "send_call_s": send_s,
        "recipients": answer.get("recipients"),
        "sent": stats.get("sent"),
        "rate": rate,
        "smtp_source_rate": wire,
        "ratio": rate / wire,
        "claim_plan_after_fan_out": plan_fresh,
        "claim_plan_after_analyze": plan_analyzed,
        "last_analyze_after_import": analyzed,
    }
    results.raw["user_path"] = figures
    complete = stats.get("sent") == subscribers
    results.add(
        Row(
            "user-path",
            f"import {subscribers:,} via API, send at once, 1 worker (PostgreSQL)",
            rate,
            "msg/s",
            "",
            None,
            f"{rate / wire:.2f}x smtp-source ({wire:,.0f} msg/s at {SENT_BYTES // 1024} KB); "
            f"import {subscribers / import_s:,.0f} rows/s; {len(body) / 1024:.1f} KB Markdown"
            + ("" if complete else f"; NOT ALL SENT: {stats.get('sent')}"),
        )
    )
    return figures
