"""Dispatch throughput end to end: seed, send through the API, time until the issue is `sent`.

SQLite runs the embedded dispatcher of `tidings serve`; PostgreSQL runs `tidings serve`
with no dispatcher plus 1, 2 or 4 `tidings worker` processes. Every run has a fresh
database, seeded set-based, and sends into the same smtp-sink as smtp-source did, so the
rate can be read as a fraction of the wire's limit measured in this same run.

Tracking is explicit in every run: TIDINGS_TRACKING=off for the plain rows (the product's
default, aggregate, tracks opens and clicks), and for the `-track` rows TIDINGS_TRACKING=
aggregate with the issue's track_opens and track_clicks on: every link rewritten to a
signed per-recipient token and an open pixel. A `-track` run follows the plain run of the
same setup, so the pair sees the same state of the machine.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from bench.cpu_split import CPUSplit, in_group, postgres_backends, smtp_sink
from bench.infra import (
    Processes,
    _asyncpg_dsn,
    create_pg_database,
    drop_pg_database,
    group_cpu_seconds,
    proc_status,
)
from bench.report import Results, Row
from bench.seed import migrate, seed
from bench.stack import Stack, make_env

DKIM_AT_LEAST = 10_000  # recipients of a DKIM run, so that it measures a steady state
# The cores every part of a run shares (the bench runs on the machine it measures).
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Run:
    backend: str  # sqlite | postgres
    workers: int  # 0: the embedded dispatcher of `tidings serve`
    dkim: bool
    subscribers: int
    tracking: bool = False  # opens and clicks tracked (TIDINGS_TRACKING=aggregate)

    @property
    def name(self) -> str:
        who = "embedded" if self.workers == 0 else f"{self.workers}w"
        return f"{self.backend}-{who}-dkim{'on' if self.dkim else 'off'}" + (
            "-track" if self.tracking else ""
        )


def plan(
    *, subscribers: int, dkim_subscribers: int, postgres: bool, tracking: bool = True
) -> list[Run]:
    """The runs of one benchmark: DKIM runs are shorter, their rate is CPU-bound and steady.

    A DKIM run has at least DKIM_AT_LEAST recipients (or all of them): at 1,000 the first
    claims, the compile and the signing pool's start were a third of the run, not its rate.
    With `tracking`, each DKIM-off PostgreSQL run is followed by the same run with tracking.
    """
    dkim_subscribers = max(dkim_subscribers, min(subscribers, DKIM_AT_LEAST))
    runs = [Run("sqlite", 0, False, subscribers), Run("sqlite", 0, True, dkim_subscribers)]
    if postgres:
        for n in (1, 2, 4):
            runs.append(Run("postgres", n, False, subscribers))
            if tracking:
                runs.append(Run("postgres", n, False, subscribers, tracking=True))
        runs += [Run("postgres", n, True, dkim_subscribers) for n in (2, 4)]
    return runs


async def _wait_workers(url: str, count: int, timeout: float = 20) -> None:
    """Wait until `count` workers have registered, so start-up is not timed as sending."""
    deadline = time.monotonic() + timeout
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        while time.monotonic() < deadline:
            if await conn.fetchval("SELECT count(*) FROM workers") >= count:
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def tracked_links(url: str, issue_id: int) -> int:
    """Links of the issue in its link table: > 0 when its links were rewritten for tracking."""
    query = "SELECT count(*) FROM issue_links WHERE issue_id = "
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as db:
            return int(db.execute(query + "?", (issue_id,)).fetchone()[0])
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=10)
    try:
        return int(await conn.fetchval(query + "$1", issue_id))
    finally:
        await conn.close()


async def dispatch_once(
    run: Run, *, procs: Processes, sink_port: int, dkim_key: Path, concurrency: int
) -> dict[str, Any]:
    """One end-to-end send; the figures of that run."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{run.name}-"))
    url = (
        f"sqlite+aiosqlite:///{tmp}/tidings.db"
        if run.backend == "sqlite"
        else await create_pg_database()
    )
    stack: Stack | None = None
    try:
        await migrate(url)
        seed_start = time.perf_counter()
        await seed(url, subscribers=run.subscribers)
        seed_s = time.perf_counter() - seed_start
        env = make_env(
            database_url=url,
            sink_port=sink_port,
            var_dir=tmp,
            embedded_worker=run.workers == 0,
            dkim_key=dkim_key if run.dkim else None,
            concurrency=concurrency,
            tracking="aggregate" if run.tracking else "off",
        )
        stack = await Stack(procs, env, run.name).start()
        stack.start_workers(run.workers)
        if run.workers:
            await _wait_workers(url, run.workers)
        issue_id = await stack.create_issue(track_opens=run.tracking, track_clicks=run.tracking)
        everyone = [*stack.workers] if stack.workers else [stack.server]
        senders = [p for p in everyone if p is not None]
        # CPU from the send call on: start-up (imports, the signing pool) is not sending.
        cpu0 = sum(group_cpu_seconds(p.pid) for p in senders)
        split = CPUSplit(_parts(stack, url, sink_port)).start()
        t0 = time.time()
        send_s, answer = await stack.send(issue_id)
        stats = await stack.wait_sent(issue_id, timeout=max(600, run.subscribers / 50))
        observed = time.time()
        parts_cpu = split.stop()
        # finished_at, when given, is more exact than the polling interval.
        finished = stats.get("finished_at")
        end = datetime.fromisoformat(finished).timestamp() if finished else observed
        elapsed = max(end - t0, 1e-3)
        cpu = sum(group_cpu_seconds(p.pid) for p in senders) - cpu0
        rss = max(proc_status(p.pid, "VmHWM") for p in senders)
        sent = max(stats.get("sent") or 1, 1)
        split_us = {k: v / sent * 1e6 for k, v in parts_cpu.items()}
        # The ceiling: the rate at which the parts' CPU a message would fill every core.
        # A run near it is bound by the machine, not by waiting; far below it, by waiting.
        total_us = sum(split_us.values())
        links = await tracked_links(url, issue_id)
        if run.tracking and not links:
            raise RuntimeError("tracking asked for, but the issue has no tracked links")
        return {
            "run": run.name,
            "backend": run.backend,
            "workers": run.workers,
            "dkim": run.dkim,
            "tracking": run.tracking,
            "recipients": answer.get("recipients"),
            "sent": stats.get("sent"),
            "failed": stats.get("failed"),
            "status": stats["status"],
            "seconds": elapsed,
            "rate": (stats.get("sent") or 0) / elapsed,
            "send_call_s": send_s,
            "seed_s": seed_s,
            "sender_cpu_s": cpu,
            "cpu_us_per_msg": cpu / sent * 1e6,
            "peak_rss_mb": rss,
            # Every part's CPU a message, the senders' included: what bounds the rate.
            "cpu_split_us": split_us,
            "cpu_total_us": total_us,
            "ceiling_rate": CORES * 1e6 / total_us if total_us else None,
            "app_rate": stats.get("messages_per_second"),
            "tracked_links": links,
        }
    finally:
        if stack is not None:
            await stack.stop()
        if run.backend == "postgres":
            await drop_pg_database(url)


def _parts(stack: Stack, url: str, sink_port: int) -> dict[str, Any]:
    """The CPU split's parts: the workers, the server, PostgreSQL's backends, smtp-sink."""
    parts: dict[str, Any] = {}
    if stack.workers:
        groups = {p.pid for p in stack.workers if p is not None}
        parts["workers"] = lambda _cmd, group: group in groups
    if stack.server is not None:
        parts["server"] = in_group(stack.server.pid)
    if not url.startswith("sqlite"):
        parts["postgres"] = postgres_backends(url.rsplit("/", 1)[1])
    parts["smtp-sink"] = smtp_sink(sink_port)
    return parts


async def measure_dispatch(
    results: Results,
    runs: list[Run],
    *,
    procs: Processes,
    sink_port: int,
    dkim_key: Path,
    source: Callable[[], float] | None,
    concurrency: int = 20,
) -> list[dict[str, Any]]:
    """Every run of the plan, each as a row with its ratio to smtp-source.

    `source` measures smtp-source now: it runs before the first run and after each one,
    and each run's ratio is to the mean of the two around it. The machines drift by a
    quarter within minutes (smtp-source 6,095 -> 9,415 msg/s in one run, 2026-12-01), so
    a ratio to one reference for the whole part says more about the drift than the run.
    """
    done: list[dict[str, Any]] = []
    before = source() if source else None
    for run in runs:
        print(f"- dispatch {run.name}: {run.subscribers:,} recipients")
        try:
            figures = await dispatch_once(
                run, procs=procs, sink_port=sink_port, dkim_key=dkim_key, concurrency=concurrency
            )
        except Exception as exc:  # noqa: BLE001 - one broken run must not lose the others
            results.add(Row("dispatch", run.name, None, "msg/s", note=f"error: {exc}"[:200]))
            continue
        after = source() if source else None
        figures["smtp_source"] = (before + after) / 2 if before and after else None
        before = after
        done.append(figures)
        ratio = figures["rate"] / figures["smtp_source"] if figures["smtp_source"] else None
        figures["ratio"] = ratio
        figures["ceiling_ratio"] = ceiling = (
            figures["ceiling_rate"] / figures["smtp_source"]
            if figures["smtp_source"] and figures["ceiling_rate"]
            else None
        )
        # Pass/miss is judged in the summary rows, against both smtp-source samples.
        target, ok = "", None
        note = (f"{ratio:.3f} x smtp-source {figures['smtp_source']:,.0f}; " if ratio else "") + (
            f"{figures['sent']:,}/{figures['recipients']:,} sent in {figures['seconds']:.1f} s, "
            f"{figures['cpu_us_per_msg']:,.0f} us CPU/msg, RSS {figures['peak_rss_mb']:.0f} MB; "
            + (_ceiling_note(figures) + "; " if ceiling else "")
            + "CPU us/msg by part: "
            + ", ".join(f"{k} {v:,.0f}" for k, v in figures["cpu_split_us"].items())
        )
        if figures["status"] != "sent" or figures["sent"] != figures["recipients"]:
            ok, note = False, f"NOT ALL SENT ({figures['status']}); " + note
        if run.tracking:
            note += f", {figures['tracked_links']} tracked links"
        results.add(Row("dispatch", run.name, figures["rate"], "msg/s", target, ok, note))
    results.raw["dispatch"] = done
    return done


# Issue 15's targets, as ratios to smtp-source: (label, which runs, at least).
TARGETS = (
    (
        "best PostgreSQL, DKIM off",
        lambda r: r["backend"] == "postgres" and not r["dkim"] and not r["tracking"],
        0.65,
    ),
    (
        "best PostgreSQL, DKIM off, tracking on",
        lambda r: r["backend"] == "postgres" and not r["dkim"] and r["tracking"],
        0.6,
    ),
    (
        "best PostgreSQL, DKIM on (RSA-2048)",
        lambda r: r["backend"] == "postgres" and r["dkim"] and not r["tracking"],
        0.35,
    ),
    (
        "SQLite, embedded, DKIM off",
        lambda r: r["backend"] == "sqlite" and not r["dkim"] and not r["tracking"],
        0.5,
    ),
)


def summarise(results: Results, runs: list[dict[str, Any]]) -> None:
    """The best run of each target's kind against it (by its ratio to the smtp-source runs
    just before and after it), and what tracking costs."""
    best: dict[str, dict[str, Any]] = {}
    for label, pick, need in TARGETS:
        chosen = [r for r in runs if pick(r) and r.get("ratio")]
        if not chosen:
            continue
        top = max(chosen, key=lambda r: r["ratio"])
        best[label] = max(chosen, key=lambda r: r["rate"])
        ratio = top["ratio"]
        whole = top["status"] == "sent" and top["sent"] == top["recipients"]
        results.add(
            Row(
                "dispatch",
                label,
                ratio,
                "x smtp-source",
                f">= {need}",
                ratio >= need and whole,
                f"{top['run']}: {top['rate']:,.0f} msg/s vs smtp-source {top['smtp_source']:,.0f}"
                " (the mean of the runs just before and after it)"
                + ("; " + _ceiling_note(top) if top.get("ceiling_ratio") else ""),
            )
        )
    off, on = best.get(TARGETS[0][0]), best.get(TARGETS[1][0])
    if off and on:
        drop = 1 - on["rate"] / off["rate"]
        pairs = {r["workers"]: r["rate"] for r in runs if TARGETS[0][1](r)}
        each = ", ".join(
            f"{r['workers']}w {1 - r['rate'] / pairs[r['workers']]:+.1%}"
            for r in runs
            if TARGETS[1][1](r) and r["workers"] in pairs
        )
        results.add(
            Row(
                "dispatch",
                "tracking on: drop of the best PostgreSQL rate",
                drop * 100,
                "%",
                "<= 10",
                drop <= 0.10,
                f"{off['run']} {off['rate']:,.0f} -> {on['run']} {on['rate']:,.0f} msg/s;"
                f" drop per worker count: {each}",
            )
        )
    _signing_ceiling(results, runs)


def _ceiling_note(run: dict[str, Any]) -> str:
    return (
        f"ceiling {run['ceiling_ratio']:.3f} x ({CORES} cores / {run['cpu_total_us']:,.0f} us"
        f" of all parts a message), {run['rate'] / run['ceiling_rate']:.0%} of it"
    )


def _signing_ceiling(results: Results, runs: list[dict[str, Any]]) -> None:
    """The most DKIM-on dispatch could reach if signing cost only its own CPU (the cost
    part's signature, on one core, unshared) on top of the best DKIM-off run's parts."""
    sign_us = (results.raw.get("render") or {}).get("dkim_us")
    off = [r for r in runs if TARGETS[0][1](r) and r.get("ceiling_ratio")]
    on = [r for r in runs if TARGETS[2][1](r) and r.get("ratio")]
    if not (sign_us and off and on):
        return
    base = min(off, key=lambda r: r["cpu_total_us"])
    source = max(on, key=lambda r: r["ratio"])["smtp_source"]  # the DKIM target row's
    bound = CORES * 1e6 / (base["cpu_total_us"] + sign_us) / source
    results.add(
        Row(
            "dispatch",
            "DKIM on: the most the cores allow, signing at its own cost",
            bound,
            "x smtp-source",
            note=f"{CORES} cores / ({base['cpu_total_us']:,.0f} us of all parts a message in"
            f" {base['run']} + {sign_us:.0f} us a signature) vs smtp-source {source:,.0f}",
        )
    )
