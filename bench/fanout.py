"""Memory and fan-out: the send call for a very large list, and a worker's peak RSS.

The send call writes one delivery per recipient in one set-based statement, so its time
is the fan-out. Then one `tidings worker` sends for a bounded window (sending a million
messages would take most of the run); its peak RSS (VmHWM) is sampled through the window.
The figure to compare it with is the 1-worker dispatch run, which sends a whole smaller
list: if memory grows with the list, the million-recipient worker shows it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.dispatch import _wait_workers
from bench.infra import Processes, create_pg_database, drop_pg_database, proc_status
from bench.report import Results, Row
from bench.seed import migrate, seed
from bench.stack import Stack, make_env


async def measure_fanout(
    results: Results, *, procs: Processes, sink_port: int, subscribers: int, window: float
) -> dict[str, Any]:
    """Seed `subscribers` on a fresh PostgreSQL, time the send call, watch one worker."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    url = await create_pg_database()
    stack: Stack | None = None
    try:
        await migrate(url)
        start = time.perf_counter()
        await seed(url, subscribers=subscribers)
        seed_s = time.perf_counter() - start
        print(f"  seeded {subscribers:,} subscribers in {seed_s:.1f} s")
        env = make_env(database_url=url, sink_port=sink_port, var_dir=tmp, embedded_worker=False)
        stack = await Stack(procs, env, "fanout").start()
        stack.start_workers(1)
        await _wait_workers(url, 1)
        worker = stack.workers[0]
        idle_rss = proc_status(worker.pid, "VmRSS")
        issue_id = await stack.create_issue()
        # A slow fan-out is a figure, not a failure: wait for it up to 10 minutes.
        send_s, answer = await stack.send(issue_id, timeout=600)
        samples: list[tuple[float, float]] = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < window and worker.poll() is None:
            await asyncio.sleep(1)
            samples.append((time.monotonic() - t0, proc_status(worker.pid, "VmHWM")))
        stats = await stack.stats(issue_id)
        peak = proc_status(worker.pid, "VmHWM")
        # Pages of shared libraries (cryptography's, pydantic-core's, libpython...): counted in
        # each worker's RSS, held once in memory however many workers run.
        file_rss = proc_status(worker.pid, "RssFile")
        await stack.api.post(f"/api/v1/issues/{issue_id}/cancel")
    finally:
        if stack is not None:
            await stack.stop()
        await drop_pg_database(url)
    figures = {
        "subscribers": subscribers,
        "recipients": answer.get("recipients"),
        "send_call_s": send_s,
        "seed_s": seed_s,
        "window_s": window,
        "sent_in_window": stats.get("sent"),
        "worker_idle_rss_mb": idle_rss,
        "worker_peak_rss_mb": peak,
        "worker_file_rss_mb": file_rss,
        "rss_samples": samples,
    }
    results.raw.setdefault("fanout", {})[str(subscribers)] = figures
    million = subscribers >= 1_000_000
    label = f"{subscribers:,}"
    results.add(
        Row(
            "fan-out",
            f"send call, {label} recipients",
            send_s,
            "s",
            "< 2 (1M)",
            send_s < 2 if million else None,
            f"{answer.get('recipients'):,} deliveries written; seeding took {seed_s:.0f} s",
        )
    )
    results.add(
        Row(
            "memory",
            f"worker peak RSS, {label}-recipient send",
            peak,
            "MB",
            "< 100",
            peak < 100,
            f"first {window:.0f} s of sending: {stats.get('sent') or 0:,} sent; "
            f"idle {idle_rss:.0f} MB; {file_rss:.0f} MB of the RSS is shared libraries' pages",
        )
    )
    return figures


def summarise_fanout(results: Results, runs: list[dict[str, Any]]) -> None:
    """Does the send call grow faster than the list, does the worker's memory grow at all."""
    if len(runs) < 2:
        return
    small, big = runs[0], runs[-1]
    scale = big["subscribers"] / small["subscribers"]
    growth = big["send_call_s"] / max(small["send_call_s"], 1e-6)
    results.add(
        Row(
            "fan-out",
            f"send call growth, {small['subscribers']:,} -> {big['subscribers']:,}",
            growth,
            "x",
            f"<= {scale:.0f} (the list's)",
            growth <= scale,
            f"{small['send_call_s']:.2f} s -> {big['send_call_s']:.2f} s",
        )
    )
    more = big["worker_peak_rss_mb"] - small["worker_peak_rss_mb"]
    results.add(
        Row(
            "memory",
            f"worker peak RSS growth, {small['subscribers']:,} -> {big['subscribers']:,}",
            more,
            "MB",
            "flat (< 5 MB)",
            more < 5,
            f"{small['worker_peak_rss_mb']:.1f} -> {big['worker_peak_rss_mb']:.1f} MB",
        )
    )
