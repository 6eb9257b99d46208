"""Engagement costs: render+MIME per recipient with tracking, and report latency at scale.

Run: python bench/bench_engagement.py render [recipients]
     python bench/bench_engagement.py reports [events]   (PostgreSQL at 127.0.0.1:5432)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engagement.links import Tracking  # noqa: E402
from app.issues.rendering import IssueContent, compile_issue  # noqa: E402
from bench.bench_render import BODY, recipients  # noqa: E402

SITE = "https://news.example.org"


def _per_recipient(fn, rs) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """The best of three passes: (wall, this process's CPU) microseconds per recipient.

    On a machine shared with other work the wall time includes the time this process
    waited for a core; the CPU time is what one recipient costs.
    """
    wall, cpu = [], []
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        for r in rs:
            fn(r)
        wall.append((time.perf_counter() - start) / len(rs) * 1e6)
        cpu.append((time.process_time() - start_cpu) / len(rs) * 1e6)
    return min(wall), min(cpu)


def render(n: int) -> None:
    content = IssueContent(
        id=1, subject="This week: nine stories", preheader="What happened, in brief",
        from_addr="Weekly News <news@example.org>", template="newsletter", format="markdown",
        body=BODY, list_id="Weekly News <weekly.example.org>", list_names=("Weekly News",),
    )  # fmt: skip
    plain = compile_issue(content, archive_url=f"{SITE}/archive/1", site_url=SITE)
    tracking = Tracking(issue_id=1, site_url=SITE, secret="x" * 40, opens=True, clicks=True)
    tracked = compile_issue(
        content, archive_url=f"{SITE}/archive/1", site_url=SITE, tracking=tracking
    )
    rs = [replace(r, delivery_id=1000 + i, tracked=True) for i, r in enumerate(recipients(n))]
    off = _per_recipient(plain.render_message, rs)
    on = _per_recipient(tracked.render_message, rs)
    links = len(tracking.urls)
    load = os.getloadavg()[0]
    print(f"render+MIME, no tracking   {off[0]:7.1f} us/recipient wall, {off[1]:7.1f} CPU")
    print(
        f"render+MIME, tracking      {on[0]:7.1f} us/recipient wall, {on[1]:7.1f} CPU"
        f"  ({links} links + pixel; load average {load:.1f} on {os.cpu_count()} cores)"
    )


async def reports(events: int) -> None:
    import asyncpg

    from app.db import make_engine, make_sessionmaker
    from app.engagement import reports as rep
    from app.migrate import upgrade

    name = f"tidings_bench_eng_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
        deliveries = max(events // 5, 1)
        await conn.execute(
            "INSERT INTO issues (id, subject, preheader, template, format, body, status,"
            " recipients, in_archive, track_opens, track_clicks, created_at, updated_at)"
            " VALUES (1, 's', '', 'newsletter', 'markdown', 'b', 'sent', $1, true, true, true,"
            " now(), now())",
            deliveries,
        )
        await conn.execute(
            "INSERT INTO issue_links (issue_id, idx, url)"
            " SELECT 1, i, 'https://example.org/' || i FROM generate_series(1, 14) i"
        )
        await conn.execute(
            "INSERT INTO deliveries (issue_id, status, attempts, sent_at)"
            " SELECT 1, 'sent', 1, now() - interval '30 days' + (i % 43200) * interval '1 minute'"
            " FROM generate_series(1, $1) i",
            deliveries,
        )
        t0 = time.perf_counter()
        # Events as individual mode writes them; rollups as the recorder adds them up.
        await conn.execute(
            "INSERT INTO engagement_events (issue_id, delivery_id, kind, link_idx, at, machine,"
            " evidence) SELECT 1, 1 + i % $2, CASE WHEN i % 3 = 0 THEN 'click' ELSE 'open' END,"
            " CASE WHEN i % 3 = 0 THEN 2 + i % 12 ELSE 0 END,"
            " now() - interval '30 days' + (i % 43200) * interval '1 minute', i % 7 = 0, '{}'"
            " FROM generate_series(1, $1) i",
            events,
            deliveries,
        )
        await conn.execute(
            "INSERT INTO engagement_counts (issue_id, kind, link_idx, bucket, verdict, total, uniq)"
            " SELECT issue_id, kind, link_idx, date_trunc('hour', at),"
            " CASE WHEN machine THEN 'user-agent' ELSE '' END, count(*),"
            " count(DISTINCT delivery_id) FROM engagement_events GROUP BY 1, 2, 3, 4, 5"
        )
        await conn.execute("VACUUM ANALYZE")
        rows = await conn.fetchval("SELECT count(*) FROM engagement_counts")
        print(f"seeded {events} events, {deliveries} deliveries in "
              f"{time.perf_counter() - t0:.0f} s; {rows} rollup rows")  # fmt: skip
        await conn.close()
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        for label, call in (
            ("totals (opens, clicks, machine)", lambda s: rep.totals(s, 1)),
            ("per-link table", lambda s: rep.links(s, 1)),
            ("timeline by hour", lambda s: rep.timeline(s, 1, "hour")),
            ("timeline by day", lambda s: rep.timeline(s, 1, "day")),
        ):
            times = []
            for _ in range(15):
                async with sessions() as s:
                    start = time.perf_counter()
                    await call(s)
                    times.append((time.perf_counter() - start) * 1e3)
            print(f"{label:34s} median {statistics.median(times):6.1f} ms, "
                  f"max {max(times):6.1f} ms")  # fmt: skip
        await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "render"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    if what == "render":
        render(count or 5000)
    else:
        asyncio.run(reports(count or 1_000_000))
