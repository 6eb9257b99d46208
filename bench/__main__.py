"""`python -m bench` (= `make bench`): every benchmark in one run, one table, bench/results.json."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from bench.infra import (
    OUT,
    Processes,
    Skip,
    pg_available,
    smtp_source_rate,
    smtp_source_run,
    start_sink,
)
from bench.report import Results, Row

PARTS = (
    "wire",
    "cost",
    "dispatch",
    "statements",
    "viewers",
    "profile",
    "fanout",
    "api",
    "import",
    "audience",
    "user",
    "preview",
)
NEEDS = {  # the modules a part drives; a part whose module is not built yet is skipped
    "dispatch": ("app.delivery.dispatcher", "app.issues.router"),
    "profile": ("app.delivery.dispatcher", "app.issues.router"),
    "statements": ("app.delivery.dispatcher", "app.issues.router"),
    "fanout": ("app.delivery.dispatcher", "app.issues.router"),
    "api": ("app.subscribers.router",),
    "import": ("app.subscribers.importer",),
    "audience": ("app.console.subscribers",),
    "user": ("app.delivery.dispatcher", "app.issues.router"),
    "viewers": ("app.issues.progress", "app.console.issue_send"),
    "preview": ("bench.preview_latency", "app.console.issues"),
}


def options(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller sizes: a run of a few minutes")
    p.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeat)")
    p.add_argument("--subscribers", type=int, help="recipients of each dispatch run (100,000)")
    p.add_argument("--fanout", type=int, help="largest list of the fan-out run (1,000,000)")
    p.add_argument("--window", type=float, help="seconds a worker sends in the fan-out run")
    p.add_argument("--import-rows", type=int, help="rows of the import CSV (1,000,000)")
    p.add_argument("--audience", type=int, help="subscribers of the audience part (1,000,000)")
    p.add_argument("--viewers", type=int, help="recipients of each viewers round (100,000)")
    p.add_argument("--edits", type=int, help="edits measured by the preview part (40)")
    p.add_argument("--no-tracking", action="store_true", help="no tracking-on dispatch rows")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--output", type=Path, default=Path(__file__).parent / "results.json")
    args = p.parse_args(argv)
    q = args.quick
    args.subscribers = args.subscribers or (20_000 if q else 100_000)
    # DKIM runs: a tenth of the list, but bench/dispatch.plan raises it to DKIM_AT_LEAST
    # (10,000) or the whole list: shorter runs measured the start-up, not the rate.
    args.dkim_subscribers = max(1, args.subscribers // 10)
    big = args.fanout or (100_000 if q else 1_000_000)
    args.fanout_sizes = sorted({min(100_000, big), big})
    args.window = args.window or (15.0 if q else 60.0)
    args.import_rows = args.import_rows or (100_000 if q else 1_000_000)
    args.audience = args.audience or (100_000 if q else 1_000_000)
    args.user_subscribers = 5_000 if q else 20_000
    args.viewers = args.viewers or (20_000 if q else 100_000)
    args.edits = args.edits or (20 if q else 40)
    args.api_seconds = 5 if q else 10
    args.import_limit = 60.0 if q else 180.0
    args.profile_subscribers = 5_000 if q else 20_000
    args.statement_subscribers = 5_000 if q else 20_000
    args.source_count = 20_000 if q else 50_000
    return args


def missing(part: str) -> str | None:
    for module in NEEDS.get(part, ()):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not built yet"
    return None


async def run(args: argparse.Namespace, results: Results, procs: Processes) -> None:
    from bench import cost
    from bench.dispatch import measure_dispatch, plan, summarise

    wanted = args.only or list(PARTS)
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    dkim_key = cost.make_dkim_key(tmp / "dkim.pem")
    no_pg = "--no-postgres" if args.no_postgres else await pg_available()
    sink = size = None
    try:
        sink = start_sink(procs)
    except Skip as exc:
        results.skip("wire", str(exc))
    size = cost.measure_render(
        results, recipients=2_000 if args.quick else 5_000, dkim_key=dkim_key
    )

    async def part(name: str, fn: Any) -> None:
        if name not in wanted:
            return
        why = missing(name) or (None if sink else "smtp-sink missing")
        if why:
            results.skip(name, why)
            return
        print(f"\n== {name}")
        try:
            await fn()
        except Skip as exc:
            results.skip(name, str(exc))
        except Exception as exc:  # noqa: BLE001 - report it and go on with the other parts
            traceback.print_exc()
            results.add(
                Row(name, f"{name} failed", None, "", note=f"{type(exc).__name__}: {exc}"[:200])
            )

    rates: list[float] = []

    async def wire_part() -> None:
        rate, sink_us, source_us = smtp_source_run(sink, size=size, count=args.source_count)
        rates.append(rate)
        results.raw.setdefault("smtp_source", []).append(
            {"rate": rate, "bytes": size, "sink_us": sink_us, "source_us": source_us}
        )
        results.add(
            Row(
                "wire",
                f"smtp-source -> smtp-sink ({len(rates)})",
                rate,
                "msg/s",
                note=f"C client, {size / 1024:.1f} KB, 20 sessions, reused connections; CPU a"
                f" message: smtp-sink {sink_us:.0f} us ({rate * sink_us / 1e4:.0f}% of a core),"
                f" smtp-source {source_us:.0f} us",
            )
        )

    await part("wire", wire_part)
    await part(
        "cost",
        lambda: cost.measure_smtp(results, port=sink, count=args.source_count // 5, size=size),
    )
    source = None
    if "wire" in wanted and sink and size:
        # Each dispatch run's own reference: smtp-source just before and just after it.
        def source() -> float:
            rate = smtp_source_rate(sink, size=size, count=min(args.source_count, 20_000))
            results.raw.setdefault("smtp_source_adjacent", []).append(rate)
            return rate

    runs = plan(
        subscribers=args.subscribers,
        dkim_subscribers=args.dkim_subscribers,
        postgres=not no_pg,
        tracking=not args.no_tracking,
    )
    dispatched: list[dict[str, Any]] = []

    async def dispatch_part() -> None:
        dispatched.extend(
            await measure_dispatch(
                results, runs, procs=procs, sink_port=sink, dkim_key=dkim_key, source=source
            )
        )

    await part("dispatch", dispatch_part)
    if "wire" in wanted and "dispatch" in wanted and sink:
        await part("wire", wire_part)  # again after the long part: how much the machine drifted
    summarise(results, dispatched)
    if no_pg:
        for name in ("statements", "viewers", "profile", "fanout"):
            if name in wanted:
                results.skip(name, str(no_pg))
    else:
        from bench.statements import measure_statements

        await part(
            "statements",
            lambda: measure_statements(
                results, procs=procs, sink_port=sink, subscribers=args.statement_subscribers
            ),
        )
        from bench.viewers import measure_viewers

        await part(
            "viewers",
            lambda: measure_viewers(results, procs=procs, sink_port=sink, subscribers=args.viewers),
        )
        from bench.poll_cost import measure_poll_cost

        await part("viewers", lambda: measure_poll_cost(results))
        from bench.fanout import measure_fanout, summarise_fanout
        from bench.profiling import measure_profile

        await part(
            "profile",
            lambda: measure_profile(
                results, procs=procs, sink_port=sink, subscribers=args.profile_subscribers
            ),
        )

        async def fanout_part() -> None:
            done = []
            for n in args.fanout_sizes:
                print(f"- fan-out {n:,}")
                done.append(
                    await measure_fanout(
                        results, procs=procs, sink_port=sink, subscribers=n, window=args.window
                    )
                )
            summarise_fanout(results, done)

        await part("fanout", fanout_part)
    from bench.api import measure_api
    from bench.bench_import import measure_import

    backends = ["sqlite"] + ([] if no_pg else ["postgres"])
    for backend, processes in [(b, 1) for b in backends] + [("postgres", 2)] * (not no_pg):
        await part(
            "api",
            lambda b=backend, n=processes: measure_api(
                results,
                procs=procs,
                sink_port=sink,
                backend=b,
                seconds=args.api_seconds,
                processes=n,
            ),
        )
    if not no_pg:
        from bench.signup_cost import measure_signup_cost

        await part("api", lambda: measure_signup_cost(results, sink_port=sink))
    for backend in reversed(backends):
        await part(
            "import",
            lambda b=backend: measure_import(
                results,
                backend=b,
                rows=args.import_rows,
                sink_port=sink,
                time_limit=args.import_limit,
            ),
        )
    if no_pg:
        if "audience" in wanted:
            results.skip("audience", str(no_pg))
    else:
        from bench.audience import measure_audience

        await part("audience", lambda: measure_audience(results, subscribers=args.audience))
        from bench.user_path import measure_user_path

        await part(
            "user",
            lambda: measure_user_path(
                results, procs=procs, sink_port=sink, subscribers=args.user_subscribers
            ),
        )
    from bench.preview import measure_preview

    await part("preview", lambda: measure_preview(results, edits=args.edits, postgres=not no_pg))


def main(argv: list[str] | None = None) -> int:
    args = options(sys.argv[1:] if argv is None else argv)
    opts = {k: v for k, v in vars(args).items() if k != "output"}
    results = Results(options=opts)
    procs = Processes()
    print(f"bench: {' '.join(sys.argv[1:]) or '(full run)'}; logs and profiles in {OUT}")
    start = time.perf_counter()
    try:
        asyncio.run(run(args, results, procs))
    except KeyboardInterrupt:
        print("interrupted: printing what was measured")
    finally:
        procs.stop_all()
    print(f"\n{results.table()}\n")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{time.perf_counter() - start:.0f} s; load average at the end {load}")
    print(f"figures in {args.output}")
    results.write(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
