"""Import: rows per second of `tidings import FILE.csv --list SLUG` on a fresh database.

The CSV is generated into a temporary file: email, name and two attribute columns, one
row per new subscriber, as an export from another tool would look.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.infra import OUT, _asyncpg_dsn, create_pg_database, drop_pg_database, tidings
from bench.report import Results, Row
from bench.seed import LIST_SLUG, migrate, seed
from bench.stack import make_env


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["email", "name", "city", "plan"])
        for i in range(rows):
            out.writerow(
                [
                    f"Imported.Reader{i}@Example.com",
                    f"Imported Reader {i}",
                    "Lyon",
                    "pro" if i % 3 == 0 else "free",
                ]
            )
    return path


async def _count(url: str) -> int:
    if url.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(url.split("///", 1)[1])
        try:
            return int(db.execute("SELECT count(*) FROM subscriptions").fetchone()[0])
        finally:
            db.close()
    conn = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM subscriptions"))
    finally:
        await conn.close()


async def measure_import(
    results: Results, *, backend: str, rows: int, sink_port: int, time_limit: float
) -> dict[str, Any]:
    """Time the import command on a fresh database of `backend`; check every row landed."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-import-{backend}-"))
    csv_path = write_csv(tmp / "subscribers.csv", rows)
    url = (
        f"sqlite+aiosqlite:///{tmp}/tidings.db"
        if backend == "sqlite"
        else await create_pg_database()
    )
    try:
        await migrate(url)
        await seed(url, subscribers=0)
        env = make_env(database_url=url, sink_port=sink_port, var_dir=tmp, embedded_worker=False)
        log = OUT / f"import-{backend}.log"
        start = time.perf_counter()
        stopped = False
        with log.open("wb") as out:
            argv = tidings("import", str(csv_path), "--list", LIST_SLUG)
            proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                proc.wait(time_limit)
            except subprocess.TimeoutExpired:
                # A slow importer must not hold the whole run: rate over what it did so far.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                stopped = True
        seconds = time.perf_counter() - start
        members = await _count(url)
    finally:
        if backend == "postgres":
            await drop_pg_database(url)
        csv_path.unlink(missing_ok=True)
    done = rows if not stopped else members
    figures = {
        "rows": rows,
        "stopped_after_s": time_limit if stopped else None,
        "seconds": seconds,
        "rows_per_s": done / seconds,
        "exit": proc.returncode,
        "members": members,
    }
    results.raw[f"import_{backend}"] = figures
    rate = done / seconds
    ok = (proc.returncode == 0 and members == rows) or stopped
    note = f"{rows:,} rows in {seconds:.1f} s, whole command incl. start-up"
    if stopped:
        note = f"stopped after {time_limit:.0f} s: {members:,} of {rows:,} rows imported"
    elif not ok:
        note = f"INCOMPLETE: exit {proc.returncode}, {members:,} members; see {log}"
    target_ok = ok and rate >= 20_000 if not stopped else False
    row = Row("import", f"tidings import ({backend})", rate, "rows/s", ">= 20000", target_ok, note)
    results.add(row)
    return figures
