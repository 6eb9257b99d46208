"""What the benchmarks run on: processes, free ports, PostgreSQL databases, Postfix's sink.

Every process started here is in its own process group and is stopped by `Processes.stop_all`
(SIGTERM, then SIGKILL), so a failed or interrupted run leaves nothing behind. Every server
listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
PG_URL = os.environ.get(
    "TIDINGS_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
ADMIN_TOKEN = "bench-admin-token"
SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
POSTFIX_HINT = (
    "install Postfix's test tools without starting its daemon: "
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d"
    " && apt-get install -y postfix"
)
WRK_HINT = "install the load generator: apt-get install -y wrk"


class Skip(Exception):
    """A part that cannot run on this machine; the message says what to install."""


def require(path: str, hint: str) -> str:
    """The path of a tool, or Skip with the install hint."""
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        raise Skip(f"{Path(path).name} missing: {hint}")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tidings(*args: str) -> list[str]:
    """The argv of the `tidings` command, run by this Python from the work tree."""
    code = "import sys; from app.cli import main; sys.argv[0] = 'tidings'; main()"
    return [sys.executable, "-c", code, *args]


class Processes:
    """Child processes, each in its own group, all stopped at the end."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], *, log: Path, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after `timeout`."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        if proc in self.running:
            self.running.remove(proc)

    def stop_all(self) -> None:
        for proc in list(reversed(self.running)):
            self.stop(proc, timeout=10)


def proc_status(pid: int, field: str) -> float:
    """A /proc/PID/status field in MB (VmHWM is the peak resident set size)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """User plus system CPU of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every live process in a process group (a worker and its signing pool)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def pg_available() -> str | None:
    """None when PostgreSQL answers at PG_URL, else why not."""
    try:
        conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {PG_URL}: {exc} (set TIDINGS_BENCH_POSTGRES_URL)"
    await conn.close()
    return None


async def create_pg_database() -> str:
    """A fresh, empty PostgreSQL database with a unique name; its SQLAlchemy URL."""
    name = f"tidings_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_URL.rpartition("/")[0] + "/" + name


async def drop_pg_database(url: str) -> None:
    name = url.rpartition("/")[2]
    conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def start_sink(procs: Processes) -> int:
    """Postfix's smtp-sink on a free loopback port: accepts every message and discards it."""
    sink = require(SMTP_SINK, POSTFIX_HINT)
    port = free_port()
    argv = [sink, "-m", "1000", f"127.0.0.1:{port}", "1000"]
    if os.geteuid() == 0:
        argv[1:1] = ["-u", "postfix" if _user_exists("postfix") else "nobody"]
    procs.start(argv, log=OUT / "smtp-sink.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return port
        time.sleep(0.05)
    raise RuntimeError("smtp-sink did not start; see bench/out/smtp-sink.log")


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def smtp_source_run(
    port: int, *, size: int, count: int, sessions: int = 20
) -> tuple[float, float, float]:
    """Postfix's C client into the sink: `size`-byte bodies, reused connections.

    (messages/s, smtp-sink's CPU a message, smtp-source's CPU a message). The sink is one
    process on one core, and it is what bounds this rate: its CPU a message times the
    rate is about one core (2026-12-02: 146 us x 6,700 msg/s), while the client costs a
    third of that. So a dispatch run's ratio to this rate is the dispatcher's throughput
    against the sink's one core, with everything else (the workers, PostgreSQL, the sink
    itself) sharing the machine's cores.
    """
    from bench.cpu_split import CPUSplit, smtp_sink

    source = require(SMTP_SOURCE, POSTFIX_HINT)
    argv = [source, "-d", "-s", str(sessions), "-l", str(size), "-m", str(count),
            "-f", "bench@example.org", "-t", "reader@example.com", f"127.0.0.1:{port}"]  # fmt: skip
    split = CPUSplit({"smtp-sink": smtp_sink(port)}).start()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, check=True, timeout=600, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sink_s = split.stop()["smtp-sink"]
    source_s = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return count / wall, sink_s / count * 1e6, source_s / count * 1e6


def smtp_source_rate(port: int, *, size: int, count: int, sessions: int = 20) -> float:
    """Messages/s of Postfix's C client into the sink (see smtp_source_run)."""
    return smtp_source_run(port, size=size, count=count, sessions=sessions)[0]


async def wait_http(url: str, timeout: float = 60) -> None:
    """Wait until `url` answers 200, or raise."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


async def backend_cost_rounds(
    ways: dict[str, Callable[[asyncpg.Connection, int], Awaitable[int]]],
    *,
    setup: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    rounds: int = 3,
) -> None:
    """In a fresh, migrated database, on one connection, each way in turn `rounds` times;
    print its backend's CPU (and the wall time) a row. A way is given the round and
    returns how many rows it wrote."""
    from bench.seed import migrate  # seed imports this module

    url = await create_pg_database()
    try:
        await migrate(url)
        conn = await asyncpg.connect(_asyncpg_dsn(url))
        if setup is not None:
            await setup(conn)
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        width = max(map(len, ways))
        for round_ in range(rounds):
            for name, way in ways.items():
                cpu, wall = cpu_seconds(pid), time.perf_counter()
                rows = await way(conn, round_)
                cpu, wall = cpu_seconds(pid) - cpu, time.perf_counter() - wall
                print(f"{name:>{width}}: PostgreSQL {1e6 * cpu / rows:5.1f} us a row,"
                      f" wall {1e6 * wall / rows:5.1f} us a row")  # fmt: skip
        await conn.close()
    finally:
        await drop_pg_database(url)
