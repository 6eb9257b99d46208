"""The HTTP API under load: wrk against a real `tidings serve` (1 or N uvicorn processes).

`tidings serve` is started by bench/stack.py: one process, or `--workers N` (uvicorn's
supervisor and N worker processes, each with its own app, pool and group commit).
wrk and the server share the machine's cores, so the figures are a floor, not the
server's ceiling. The public rate limit is raised out of the way for the run
(TIDINGS_PUBLIC_RATE_LIMIT), since wrk comes from a single address.

Where the CPU went during each wrk run is measured from /proc and getrusage: the server's
process group, the PostgreSQL backends of the run's database, and wrk itself, each as
CPU µs per request; what is left of 2 cores is other work on the machine or idle time.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.infra import (
    ADMIN_TOKEN,
    OUT,
    WRK_HINT,
    Processes,
    children_cpu,
    create_pg_database,
    drop_pg_database,
    group_cpu_seconds,
    require,
)
from bench.report import Results, Row
from bench.seed import LIST_SLUG, migrate, seed
from bench.stack import Stack, make_env

# Each wrk thread has its own Lua state: a thread number plus a counter makes every
# address unique across threads and runs. done() prints the figures as one JSON line.
# wrk's connections: 64 by default (issue 6's and listmonk's runs), TIDINGS_BENCH_WRK_C to
# see the latency at a lower concurrency.
CONNECTIONS = int(os.environ.get("TIDINGS_BENCH_WRK_C", "64"))
# Seconds of sign-ups before the measured run, so its figures are the server's steady state.
# A cold server spends its first sign-ups configuring the ORM's mappers, compiling and
# preparing statements, rendering the confirmation template and opening connections, each
# step blocking the event loop for 30-130 ms: at -c16, a 10 s run without this counted
# ~50 answers of 200-400 ms, all in its first 0.3 s, and they were its p99.
WARMUP = int(os.environ.get("TIDINGS_BENCH_WARMUP", "3"))

LUA_COMMON = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
            + summary.errors.write + summary.errors.timeout
  io.write(string.format('WRKJSON {"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, '
    .. '"max_ms": %f, "errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, bad, summary.errors.status))
end
"""
LUA_SUBSCRIBE = (
    LUA_COMMON
    + """
local n = 0
function request()
  n = n + 1
  local body = string.format(
    '{"email": "wrk%d-%d-%d@example.com", "name": "Load Test", "lists": ["%s"]}',
    tid or 0, RUN, n, "LIST")
  return wrk.format("POST", "/api/v1/subscribe", {["Content-Type"] = "application/json"}, body)
end
"""
)


def backend_cpu_seconds(database: str) -> float:
    """CPU time of the live PostgreSQL backends connected to `database`."""
    total = 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if database.encode() not in cmdline.read_bytes():
                continue
            fields = (cmdline.parent / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def wrk(
    url: str,
    script: str,
    *,
    seconds: int,
    headers: dict[str, str] | None = None,
    cpu_of: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run wrk (2 threads, CONNECTIONS connections) and return its figures.

    `cpu_of`: name -> a function giving that part's CPU seconds so far; each part's CPU
    per request during the run comes back as `cpu_us[name]`, wrk's own as `cpu_us["wrk"]`.
    """
    parts = {"wrk": children_cpu, **(cpu_of or {})}
    before = {k: f() for k, f in parts.items()}
    binary = require("/usr/bin/wrk", WRK_HINT)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    argv = [binary, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", f.name]
    for k, v in (headers or {}).items():
        argv += ["-H", f"{k}: {v}"]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=seconds + 60)
    Path(f.name).unlink()
    (OUT / "wrk.log").open("a").write(out.stdout + out.stderr)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no figures: {out.stderr.strip()[:200]}")
    figures = json.loads(line.removeprefix("WRKJSON "))
    figures["rps"] = figures["requests"] / figures["seconds"]
    n = max(1, figures["requests"])
    figures["cpu_us"] = {k: (f() - before[k]) / n * 1e6 for k, f in parts.items()}
    figures["load"] = os.getloadavg()[0]
    return dict(figures)


async def measure_api(
    results: Results,
    *,
    procs: Processes,
    sink_port: int,
    backend: str,
    seconds: int,
    subscribers: int = 10_000,
    processes: int = 1,
) -> dict[str, Any]:
    """POST /api/v1/subscribe (double opt-in: each sends a confirmation) and GET subscribers."""
    require("/usr/bin/wrk", WRK_HINT)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-api-{backend}-"))
    url = (
        f"sqlite+aiosqlite:///{tmp}/tidings.db"
        if backend == "sqlite"
        else await create_pg_database()
    )
    stack: Stack | None = None
    figures: dict[str, Any] = {}
    try:
        await migrate(url)
        await seed(url, subscribers=subscribers, double_opt_in=True)
        env = make_env(database_url=url, sink_port=sink_port, var_dir=tmp, embedded_worker=False)
        stack = Stack(procs, env, f"api-{backend}-{processes}p", serve_processes=processes)
        await stack.start()
        base = f"http://127.0.0.1:{stack.port}"
        run = abs(hash(tmp)) % 10**6
        script = LUA_SUBSCRIBE.replace("LIST", LIST_SLUG)
        assert stack.server is not None
        cpu_of = {"server": lambda: group_cpu_seconds(stack.server.pid)}  # type: ignore[union-attr]
        if backend == "postgres":
            database = url.rpartition("/")[2]
            cpu_of["postgres"] = lambda: backend_cpu_seconds(database)
        sink = next((p for p in procs.running if f"127.0.0.1:{sink_port}" in p.args), None)
        if sink is not None:  # each sign-up's confirmation lands there
            cpu_of["smtp-sink"] = lambda: group_cpu_seconds(sink.pid)  # type: ignore[union-attr]
        if WARMUP:  # other addresses than the measured run's (RUN is part of each one)
            warm = script.replace("RUN", str(run + 1))
            figures["subscribe_warmup"] = wrk(base + "/api/v1/subscribe", warm, seconds=WARMUP)
        figures["subscribe"] = wrk(
            base + "/api/v1/subscribe", script.replace("RUN", str(run)), seconds=seconds,
            cpu_of=cpu_of,
        )  # fmt: skip
        figures["list"] = wrk(
            base + "/api/v1/subscribers?limit=100",
            LUA_COMMON,
            seconds=seconds,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    finally:
        if stack is not None:
            await stack.stop()
        if backend == "postgres":
            await drop_pg_database(url)
    results.raw[f"api_{backend}_{processes}p"] = figures
    shared = (f"{processes} server process(es); wrk -t2 -c{CONNECTIONS} on the same 2 cores,"
              f" after {WARMUP} s of warm-up")  # fmt: skip
    backend = backend if processes == 1 else f"{backend}, {processes} processes"
    for key, what in (("subscribe", "POST /api/v1/subscribe"), ("list", "GET /api/v1/subscribers")):
        f = figures[key]
        pg_subscribe = backend.startswith("postgres") and key == "subscribe"
        bad = f"; {f['errors']:,} errors/non-2xx" if f["errors"] else ""
        cpu = ", ".join(f"{k} {v:,.0f}" for k, v in f.get("cpu_us", {}).items())
        cpu = f"; CPU us/request: {cpu}; load {f['load']:.1f}" if key == "subscribe" else ""
        results.add(
            Row(
                "api",
                f"{what} ({backend})",
                f["rps"],
                "req/s",
                ">= 1500" if pg_subscribe else "",
                f["rps"] >= 1500 and not f["errors"] if pg_subscribe else None,
                f"{shared}{bad}{cpu}",
            )
        )
        results.add(
            Row(
                "api",
                f"{what} ({backend}) p99",
                f["p99_ms"],
                "ms",
                "< 50" if pg_subscribe else "",
                f["p99_ms"] < 50 if pg_subscribe else None,
                f"p50 {f['p50_ms']:.1f} ms",
            )
        )
    return figures


if __name__ == "__main__":  # pragma: no cover - a tool
    import asyncio
    import sys

    from bench.infra import start_sink

    async def main(counts: list[int], seconds: int) -> None:
        """`python -m bench.api [SECONDS [PROCESSES ...]]`: PostgreSQL only, e.g. `10 1 2`."""
        procs = Processes()
        try:
            sink = start_sink(procs)
            results = Results(options={})
            for n in counts:
                await measure_api(results, procs=procs, sink_port=sink, backend="postgres",
                                  seconds=seconds, processes=n)  # fmt: skip
            for row in results.rows:
                print(f"{row.what}: {row.value:,.1f} {row.unit}  {row.note}")
        finally:
            procs.stop_all()

    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(args[1:] or [1, 2], args[0] if args else 10))
