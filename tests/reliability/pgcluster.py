"""A private PostgreSQL cluster for outage tests.

Stopping the shared server at 127.0.0.1:5432 would break every other test running at
the same time, so the outage tests get a cluster of their own: initdb into a temp dir,
`trust` auth on loopback, a free port, and stop/start on demand.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.smtp import free_port


def _bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries installed, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    try:
        return int(Path(path).parent.parent.name)
    except ValueError:
        return 0


def available() -> str | None:
    """None when a private cluster can run here; otherwise what is missing."""
    if _bin_dir() is None:
        return "PostgreSQL server binaries (apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "runuser (util-linux) to run initdb as the postgres user"
    return None


class PgCluster:
    """One throwaway PostgreSQL cluster on 127.0.0.1 and a free port."""

    def __init__(self) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries")
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.running = False

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)

    def init(self) -> PgCluster:
        """Create the cluster's files (trust auth: it only listens on loopback)."""
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        return self

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast: disconnects every client at once, like a crash to them)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database on this cluster; return its SQLAlchemy URL."""
        self._run(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )
        return self.url(name)

    def destroy(self) -> None:
        """Stop the server if running and delete every file."""
        if self.running:
            try:
                self.stop("immediate")
            except subprocess.SubprocessError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
