"""Database statements per 1,000 messages sent, PostgreSQL, counted by the server itself.

On a bigger machine the workers scale until the one database is the limit, so what each
message costs it decides how far: the statements (and transactions) a send makes per
1,000 messages, by kind, and the backends' CPU for them. PostgreSQL writes every
statement of the run's database to its log (`ALTER DATABASE ... SET log_statement =
'all'`, which only that database's new connections take up), and the log lines of the
send are counted, from the send call until the issue is sent, attributed to the workers
or the server by the backend's pid. Logging every statement costs the backends time,
so this is a run of its own, never one whose rate is reported.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg

from bench.cpu_split import CPUSplit, postgres_backends
from bench.infra import Processes, Skip, _asyncpg_dsn, create_pg_database, drop_pg_database
from bench.report import Results, Row
from bench.seed import migrate, seed
from bench.stack import Stack, make_env

# '%m [%p] %q%u@%d ' (Debian's log_line_prefix): the time, [pid], user@database, then
# "LOG:  statement: SQL" (simple protocol) or "LOG:  execute NAME: SQL" (extended).
_LINE = re.compile(r"\[(\d+)\] \S+@(\S+) LOG:  (?:statement|execute [^:]*): (.*)")
_TABLE = re.compile(r"\b(?:FROM|UPDATE|INTO|JOIN)\s+\"?(\w+)", re.IGNORECASE)


def kind(sql: str) -> str:
    """'UPDATE deliveries', 'SELECT subscribers', 'BEGIN': what a statement is, in brief."""
    verb = sql.split(None, 1)[0].upper().rstrip(";") if sql.strip() else "?"
    if verb in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "SET", "SHOW"}:
        return verb
    table = _TABLE.search(sql)
    return f"{verb} {table[1]}" if table else verb


def _continued(lines: list[str], i: int) -> str:
    """The SQL of a statement whose text began on the line after its log line (SQLAlchemy's
    ORM statements start with a newline): PostgreSQL logs the rest as tab-led lines."""
    rest = []
    for line in lines[i + 1 :]:
        if not line.startswith("\t"):
            break
        rest.append(line.strip())
    return " ".join(rest)


async def _log_file(conn: asyncpg.Connection) -> Path:
    current = await conn.fetchval("SELECT pg_current_logfile()")
    if current:
        data_dir = await conn.fetchval("SHOW data_directory")
        path = Path(current) if current.startswith("/") else Path(data_dir) / current
    else:  # Debian: the cluster's stderr goes to /var/log/postgresql
        logs = sorted(Path("/var/log/postgresql").glob("postgresql-*-main.log"))
        if not logs:
            raise Skip("PostgreSQL's log file was not found (no pg_current_logfile)")
        path = logs[-1]
    try:
        path.open("rb").close()
    except OSError as exc:
        raise Skip(f"PostgreSQL's log {path} is not readable: {exc}") from exc
    return path


async def _backend_roles(conn: asyncpg.Connection, database: str, stack: Stack) -> dict[int, str]:
    """Backend pid -> 'workers' or 'server', through the client's TCP port (`ss -tnp`);
    '?' for a backend whose client is gone (its statements count as the workers')."""
    rows = await conn.fetch(
        "SELECT pid, client_port FROM pg_stat_activity WHERE datname = $1 AND client_port > 0",
        database,
    )
    listing = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=False).stdout
    port_pid: dict[int, int] = {}
    for line in listing.splitlines():
        cols = line.split()
        if len(cols) < 6 or "pid=" not in cols[-1]:
            continue
        port = int(cols[3].rpartition(":")[2])
        port_pid[port] = int(cols[-1].split("pid=", 1)[1].split(",", 1)[0])
    workers = {p.pid for p in stack.workers}
    server = stack.server.pid if stack.server is not None else -1
    roles = {}
    for r in rows:
        owner = port_pid.get(r["client_port"])
        roles[r["pid"]] = "workers" if owner in workers else "server" if owner == server else "?"
    return roles


async def count_once(
    *, procs: Processes, sink_port: int, subscribers: int, workers: int
) -> dict[str, Any]:
    """One send of `subscribers` messages by `workers` workers, every statement counted."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-statements-"))
    url = await create_pg_database()
    database = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    stack: Stack | None = None
    try:
        log = await _log_file(admin)
        await migrate(url)
        await seed(url, subscribers=subscribers)
        await admin.execute(f"ALTER DATABASE {database} SET log_statement = 'all'")
        env = make_env(database_url=url, sink_port=sink_port, var_dir=tmp, embedded_worker=False)
        env["TIDINGS_TRACKING"] = "off"
        stack = await Stack(procs, env, f"statements-{workers}w").start()
        stack.start_workers(workers)
        issue_id = await stack.create_issue()
        await asyncio.sleep(2)  # the workers' start-up statements are not the send's
        offset = log.stat().st_size
        split = CPUSplit({"postgres": postgres_backends(database)}).start()
        _, answer = await stack.send(issue_id)
        stats = await stack.wait_sent(issue_id, timeout=600)
        backend_cpu = split.stop()["postgres"]
        roles = await _backend_roles(admin, database, stack)
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    finally:
        if stack is not None:
            await stack.stop()
        await admin.close()
        await drop_pg_database(url)
    kinds: Counter[str] = Counter()
    by_role: Counter[str] = Counter()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _LINE.search(line)
        if m is None or m[2] != database:
            continue
        role = roles.get(int(m[1]), "?")
        by_role[role] += 1
        if role != "server":
            kinds[kind(m[3] or _continued(lines, i))] += 1
    sent = int(stats.get("sent") or 0)
    per = 1000 / max(sent, 1)
    return {
        "workers": workers,
        "sent": sent,
        "recipients": answer.get("recipients"),
        "statements_per_1000": {k: v * per for k, v in by_role.items()},
        "kinds_per_1000": {k: v * per for k, v in kinds.most_common()},
        "postgres_cpu_us_per_msg": backend_cpu / max(sent, 1) * 1e6,
    }


async def measure_statements(
    results: Results, *, procs: Processes, sink_port: int, subscribers: int
) -> None:
    """Statements per 1,000 messages with 1 and 2 workers, as rows and raw figures."""
    done = []
    for workers in (1, 2):
        f = await count_once(
            procs=procs, sink_port=sink_port, subscribers=subscribers, workers=workers
        )
        done.append(f)
        ours = sum(v for k, v in f["statements_per_1000"].items() if k != "server")
        top = ", ".join(f"{k} {v:.1f}" for k, v in list(f["kinds_per_1000"].items())[:8])
        results.add(
            Row(
                "statements",
                f"statements per 1,000 messages ({workers}w)",
                ours,
                "stmts",
                note=(
                    f"workers' statements, {f['sent']:,} sent; the server's "
                    f"{f['statements_per_1000'].get('server', 0):.1f} (the bench's polling) "
                    f"apart; PostgreSQL CPU {f['postgres_cpu_us_per_msg']:.0f} us/msg with "
                    f"every statement logged; by kind: {top}"
                ),
            )
        )
    results.raw["statements"] = done
