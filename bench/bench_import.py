"""Import: rows per second of `tidings import FILE.csv --list SLUG` on a fresh database.

The CSV is generated into a temporary file: email, name and two attribute columns, one
row per new subscriber, as an export from another tool would look. Beside the rate, the
CPU time per row of the command (its rusage) and, on PostgreSQL, of the backends serving
its database (sampled from /proc while it runs: they exit with the command), so that a
loaded machine's figures can still be compared.
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
from sqlalchemy.engine import make_url

from bench.cpu_split import CPUSplit, postgres_backends
from bench.infra import (
    OUT,
    _asyncpg_dsn,
    children_cpu,
    create_pg_database,
    drop_pg_database,
    tidings,
)
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
        command_cpu = children_cpu()
        database = make_url(url).database if backend == "postgres" else None
        split = CPUSplit({"postgres": postgres_backends(database)} if database else {}).start()
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
        command_cpu = children_cpu() - command_cpu
        backend_cpu = split.stop().get("postgres", 0.0)
        members = await _count(url)
    finally:
        if backend == "postgres":
            await drop_pg_database(url)
        csv_path.unlink(missing_ok=True)
    done = rows if not stopped else members
    per_row = 1e6 / max(done, 1)
    figures = {
        "rows": rows,
        "stopped_after_s": time_limit if stopped else None,
        "seconds": seconds,
        "rows_per_s": done / seconds,
        "exit": proc.returncode,
        "members": members,
        "command_cpu_us_per_row": command_cpu * per_row,
        "postgres_cpu_us_per_row": backend_cpu * per_row if database else None,
    }
    results.raw[f"import_{backend}"] = figures
    rate = done / seconds
    ok = (proc.returncode == 0 and members == rows) or stopped
    cpu = f"CPU per row: command {command_cpu * per_row:.1f} us"
    if database:
        cpu += f", PostgreSQL {backend_cpu * per_row:.1f} us"
    note = f"{rows:,} rows in {seconds:.1f} s, whole command incl. start-up; {cpu}"
    if stopped:
        note = f"stopped after {time_limit:.0f} s: {members:,} of {rows:,} rows imported; {cpu}"
    elif not ok:
        note = f"INCOMPLETE: exit {proc.returncode}, {members:,} members; see {log}"
    target = 60_000 if backend == "postgres" else 20_000  # issue 15 (PostgreSQL), issue 6
    target_ok = ok and rate >= target if not stopped else False
    row = Row(
        "import", f"tidings import ({backend})", rate, "rows/s", f">= {target}", target_ok, note
    )
    results.add(row)
    return figures
