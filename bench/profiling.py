"""Where a dispatcher's time goes: the real Dispatcher, in this process, under pyinstrument.

The send call goes through a `tidings serve` with no dispatcher; the Dispatcher runs here
(one process, like one `tidings worker`) so pyinstrument samples all of its work. Each
sample is put in the category of the innermost frame that has one (a regex compiled by
SQLAlchemy counts as database, a QP encoder called by the renderer as MIME), so the
categories add up to the whole run. The text and HTML profiles go to bench/out/.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.infra import OUT, Processes, create_pg_database, drop_pg_database
from bench.report import Results, Row
from bench.seed import migrate, seed
from bench.stack import Stack, make_env

CATEGORIES = (
    ("DKIM", ("/dkim/", "/app/delivery/dkim.py")),
    ("render + MIME", ("/app/issues/", "/jinja2/", "/markupsafe/", "/quopri", "/email/")),
    ("SMTP client", ("/aiosmtplib/", "/app/delivery/smtp.py", "/app/delivery/transport.py")),
    ("database", ("/sqlalchemy/", "/asyncpg/", "/aiosqlite/", "/sqlite3/")),
    ("dispatcher logic", ("/app/delivery/",)),
    ("event loop + sockets", ("/asyncio/", "/uvloop/", "/selectors.py")),
)


def _category(path: str) -> str | None:
    for name, needles in CATEGORIES:
        if any(n in path for n in needles):
            return name
    return None


def summarise(root: Any) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Seconds per category, and the heaviest functions by self time."""
    by_cat: dict[str, float] = defaultdict(float)
    by_fn: dict[str, float] = defaultdict(float)
    stack: list[tuple[Any, str, str]] = [(root, "other", "")]
    while stack:
        frame, inherited, parent = stack.pop()
        path = frame.file_path or ""
        cat = _category(path) or inherited
        if cat == "event loop + sockets" and inherited not in ("other", cat):
            cat = inherited  # a socket write for aiosmtplib is the SMTP client's cost
        if frame.function == "select" and path.endswith("selectors.py"):
            cat = "idle (waiting for I/O)"
        own = frame.time - sum(child.time for child in frame.children)
        by_cat[cat] += own
        # A synthetic [self] or [await] leaf is its parent's own time.
        name = parent if frame.is_synthetic else f"{frame.function} ({frame.file_path_short})"
        if own > 0 and name:
            by_fn[name] += own
        stack.extend((child, cat, name) for child in frame.children)
    top = sorted(((t, f) for f, t in by_fn.items()), reverse=True)[:12]
    return dict(by_cat), top


async def measure_profile(
    results: Results, *, procs: Processes, sink_port: int, subscribers: int
) -> dict[str, Any]:
    """Run one send through an in-process Dispatcher on PostgreSQL under pyinstrument."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        results.skip("profile", "pyinstrument missing: pip install -e '.[dev]'")
        return {}
    from app.config import Settings
    from app.db import make_engine, make_sessionmaker
    from app.delivery.dispatcher import Dispatcher
    from app.delivery.transport import build_transports

    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    url = await create_pg_database()
    stack: Stack | None = None
    try:
        await migrate(url)
        await seed(url, subscribers=subscribers)
        env = make_env(database_url=url, sink_port=sink_port, var_dir=tmp, embedded_worker=False)
        stack = await Stack(procs, env, "profile").start()
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in env.items() if k.startswith("TIDINGS_")})
        try:
            settings = Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        engine = make_engine(settings.database_url)
        transports = build_transports(settings.smtp_url, tmp)
        dispatcher = Dispatcher(
            settings=settings, sessionmaker=make_sessionmaker(engine), transports=transports
        )
        issue_id = await stack.create_issue()
        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        cpu, wall = time.process_time(), time.perf_counter()
        task = asyncio.create_task(dispatcher.run())
        try:
            await stack.send(issue_id)
            stats = await stack.wait_sent(issue_id, timeout=600)
        finally:
            dispatcher.stop()
            await asyncio.wait_for(task, timeout=30)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            session = profiler.stop()
            for t in transports:
                await t.close()
            await engine.dispose()
    finally:
        if stack is not None:
            await stack.stop()
        await drop_pg_database(url)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "profile.txt").write_text(profiler.output_text(unicode=True, color=False))
    (OUT / "profile.html").write_text(profiler.output_html())
    by_cat, top = summarise(session.root_frame())
    sent = max(int(stats.get("sent") or 0), 1)
    total = sum(by_cat.values()) or 1.0
    us = {cat: secs / sent * 1e6 for cat, secs in by_cat.items()}
    figures = {
        "sent": sent,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_us_per_msg": cpu / sent * 1e6,
        "category_us_per_msg": us,
        "category_share": {c: s / total for c, s in by_cat.items()},
        "top_frames": [{"seconds": t, "frame": f} for t, f in top],
    }
    results.raw["profile"] = figures
    results.add(
        Row(
            "profile",
            "in-process Dispatcher, PostgreSQL, 1 process",
            sent / wall,
            "msg/s",
            note=f"{cpu / sent * 1e6:,.0f} us CPU/msg; bench/out/profile.html",
        )
    )
    for cat, value in sorted(us.items(), key=lambda kv: -kv[1]):
        results.add(
            Row(
                "profile", f"  {cat}", value, "us/msg", note=f"{by_cat[cat] / total:.0%} of samples"
            )
        )
    print("  top frames by self time:")
    for t, f in top:
        print(f"    {t:7.2f} s  {f}")
    return figures
