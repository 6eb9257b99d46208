"""Serve the app on loopback with tracked links of many deliveries, for wrk against /r/{token}.

Run: python bench/engagement_redirect.py [port] [--routed] [--mode aggregate|individual|off]
         [--db sqlite|postgresql] [--rate 3000] [--threads 2] [--pixel] [--gc-freeze]
         [--probe]
     wrk -t2 -c16 -d15s --latency -s WRK_SCRIPT http://127.0.0.1:PORT      (saturated)
     wrk -t2 -c16 -d15s --latency -s PACED_SCRIPT http://127.0.0.1:PORT    (--rate req/s)

It prints two wrk scripts. Each request is a token of another of DELIVERIES deliveries and
another link, so the recorder judges real hits and a flush writes real rollups, uniques
and, in individual mode, events (past 2,000 req/s a token comes round again within 10 s:
a repeat, judged and dropped). The first sends as fast as the server answers; the second
paces them at --rate requests/s in all (a schedule per wrk thread, so run it with -t
equal to --threads): the p99 at the target rate rather than at saturation. `--pixel`
makes both ask for the open pixel (/o/) instead. `--routed` serves /r/ through the whole
middleware stack and the router, as an app without engagement.endpoints.FastPath does;
by default FastPath is installed.
`--db postgresql` seeds a fresh database at TIDINGS_BENCH_POSTGRES_URL's server.
`--gc-freeze` moves start-up's objects out of the collector's reach once the app has
started (gc.freeze()), as `tidings serve` would with that line in its lifespan.
`--probe` prints, every 5 s, the event loop's stalls over 10 ms (with the CPU time the
loop thread spent in them: near the stall, our own code; near zero, the process was
descheduled or waited for the GIL) and the CPU time of the collector's pauses.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn  # noqa: E402
from sqlalchemy import Table, insert  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.engagement import endpoints, tokens  # noqa: E402
from app.engagement.models import IssueLink  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Delivery, Issue, Subscriber  # noqa: E402
from app.web.server import uvicorn_options  # noqa: E402
from bench import infra  # noqa: E402

DELIVERIES = 20_000
LINKS = 8  # indexes 2..9
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"
STALL_MS = 10.0


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


async def _seed(url: str) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    people = range(1, DELIVERIES + 1)
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(insert(_table(Issue)), [{
            "id": 1, "subject": "s", "preheader": "", "template": "newsletter",
            "format": "markdown", "body": "b", "status": "sent", "recipients": DELIVERIES,
            "created_at": now, "updated_at": now}])  # fmt: skip
        await conn.execute(insert(_table(IssueLink)), [
            {"issue_id": 1, "idx": i, "url": f"https://example.org/{i}"}
            for i in range(2, 2 + LINKS)])  # fmt: skip
        await conn.execute(insert(_table(Subscriber)), [
            {"id": i, "email": f"r{i}@example.org", "email_key": f"r{i}@example.org",
             "attributes": {}, "status": "active", "created_at": now, "updated_at": now}
            for i in people])  # fmt: skip
        await conn.execute(insert(_table(Delivery)), [
            {"id": i, "issue_id": 1, "subscriber_id": i, "status": "sent", "attempts": 1,
             "sent_at": now} for i in people])  # fmt: skip
    await engine.dispose()


def _database(kind: str, var: Path) -> str:
    """A migrated, seeded database of `kind`; its URL."""
    if kind == "postgresql":
        reason = asyncio.run(infra.pg_available())
        if reason:
            sys.exit(reason)
        url = asyncio.run(infra.create_pg_database())
        print(f"database:   {url} (dropped when the server stops)", flush=True)
    else:
        url = f"sqlite+aiosqlite:///{var / 'tidings.db'}"
    upgrade(url)
    asyncio.run(_seed(url))
    return url


# A monotonic clock in milliseconds for the paced script (wrk's Lua is LuaJIT: ffi works).
_CLOCK = """local ffi = require("ffi")
ffi.cdef[[ typedef struct { long s; long ns; } ts_t; int clock_gettime(int, ts_t *); ]]
local ts = ffi.new("ts_t")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.s) * 1000 + tonumber(ts.ns) / 1e6
end
"""


def _wrk_scripts(var: Path, secret: str, rate: int, threads: int, pixel: bool) -> tuple[Path, Path]:
    if pixel:
        paths = [f"/o/{tokens.make(secret, 'open', 1, d, 0)}" for d in range(1, DELIVERIES + 1)]
    else:
        paths = [f"/r/{tokens.make(secret, 'click', 1, d, 2 + d % LINKS)}"
                 for d in range(1, DELIVERIES + 1)]  # fmt: skip
    common = (
        "local paths = {\n" + ",\n".join(f'"{p}"' for p in paths) + "\n}\n"
        "local i = 0\n"
        f'wrk.headers["User-Agent"] = "{UA}"\n'
        "request = function()\n  i = i % #paths + 1\n"
        '  return wrk.format("GET", paths[i])\nend\n'
    )
    saturated = var / "tokens.lua"
    saturated.write_text(common)
    # Each thread keeps its own schedule, one slot every `gap` ms, whichever of its
    # connections asks: slots missed while the server was slow are not made up.
    paced = var / f"paced-{rate}.lua"
    paced.write_text(
        common + _CLOCK + f"local gap = {1000 * threads / rate!r}\nlocal slot = 0\n"
        "delay = function()\n  local t = now_ms()\n  if slot < t then slot = t end\n"
        "  local wait = slot - t\n  slot = slot + gap\n  return wait\nend\n"
    )
    return saturated, paced


async def _probe() -> None:
    """Print the loop's stalls and the collector's pauses of the last 5 s, every 5 s."""
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}  # CPU ms of each collection
    began: list[float] = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.thread_time()
        else:
            pauses[info["generation"]].append((time.thread_time() - began[0]) * 1000)

    gc.callbacks.append(timed)
    stalls: list[tuple[float, float]] = []
    report = time.monotonic() + 5
    while True:
        wall, cpu = time.perf_counter(), time.thread_time()
        await asyncio.sleep(0.001)
        late = (time.perf_counter() - wall) * 1000 - 1
        if late > STALL_MS:
            stalls.append((late, (time.thread_time() - cpu) * 1000))
        if time.monotonic() >= report:
            report += 5
            worst = max(stalls, default=(0.0, 0.0))
            held, ours = sum(s for s, _ in stalls), sum(c for _, c in stalls)
            collector = ", ".join(
                f"gen{g} {len(ms)}x max {max(ms, default=0):.0f} ms" for g, ms in pauses.items()
            )
            print(f"probe: {len(stalls)} stalls > {STALL_MS:g} ms (sum {held:.0f} ms, {ours:.0f}"
                  f" ms of it CPU; worst {worst[0]:.0f} ms, {worst[1]:.0f} ms CPU); gc CPU:"
                  f" {collector}",
                  flush=True)  # fmt: skip
            stalls.clear()
            for ms in pauses.values():
                ms.clear()


def _instrument(app: Any, url: str, *, freeze: bool, probe: bool) -> None:
    """Run the bench's extras once the app has started, inside its lifespan; a PostgreSQL
    database is dropped once the app has stopped (its recorder drained)."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: Any) -> AsyncIterator[Any]:
        async with inner(started) as state:
            if freeze and not gc.get_freeze_count():
                gc.collect()
                gc.freeze()
            task = asyncio.get_running_loop().create_task(_probe()) if probe else None
            try:
                yield state
            finally:
                if task is not None:
                    task.cancel()
        if url.startswith("postgresql"):
            await infra.drop_pg_database(url)

    app.router.lifespan_context = lifespan


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int, nargs="?", default=8765)
    parser.add_argument("--routed", action="store_true", help="no FastPath: the whole stack")
    parser.add_argument("--mode", default="aggregate", choices=["off", "aggregate", "individual"])
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--rate", type=int, default=3000, help="the paced script's req/s")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t of the paced script")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up")
    parser.add_argument("--pixel", action="store_true", help="the scripts ask for /o/, not /r/")
    parser.add_argument("--probe", action="store_true", help="print loop stalls and gc pauses")
    args = parser.parse_args()
    var = Path(tempfile.mkdtemp(prefix="tidings-redirect-"))
    url = _database(args.db, var)
    settings = Settings(database_url=url, var_dir=var, secret_key="k" * 40,
                        embedded_worker=False, admin_token="x" * 32,
                        tracking=args.mode)  # fmt: skip
    app = create_app(settings)
    fast = any(m.cls is endpoints.FastPath for m in app.user_middleware)
    if args.routed and fast:
        sys.exit("create_app already installs FastPath: --routed cannot measure without it")
    if not args.routed:
        endpoints.install(app)
    _instrument(app, url, freeze=args.gc_freeze, probe=args.probe)
    saturated, paced = _wrk_scripts(var, settings.secret_key_value, args.rate, args.threads,
                                    args.pixel)  # fmt: skip
    print(f"wrk script: {saturated}", flush=True)
    print(f"paced script: {paced} ({args.rate} req/s in all: wrk -t{args.threads})", flush=True)
    token = tokens.make(settings.secret_key_value, "click", 1, 1, 3)
    print(f"one token:  http://127.0.0.1:{args.port}/r/{token}", flush=True)
    print(f"path: {'routed' if args.routed else 'FastPath'}, tracking: {args.mode},"
          f" db: {args.db}, gc-freeze: {args.gc_freeze}", flush=True)  # fmt: skip
    # As `tidings serve` runs it (uvloop, the header-deadline protocol), without access log.
    options = {**uvicorn_options(settings), "log_level": "warning", "access_log": False}
    uvicorn.run(app, host="127.0.0.1", port=args.port, **options)


if __name__ == "__main__":
    main()
