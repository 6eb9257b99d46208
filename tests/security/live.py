"""A real `tidings serve` process on SQLite and a free port, for tests that need a real server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ADMIN_TOKEN
from tests.smtp import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = "from app.cli import main; main()"


class LiveServer:
    """`tidings serve` in a subprocess: migrated SQLite, no embedded worker, outbox mail."""

    def __init__(self, workdir: Path, **settings: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
        self.env.update(
            TIDINGS_DATABASE_URL=f"sqlite+aiosqlite:///{workdir}/tidings.db",
            TIDINGS_SMTP_URL=f"outbox://{workdir}/outbox",
            TIDINGS_VAR_DIR=str(workdir / "var"),
            TIDINGS_ADMIN_TOKEN=ADMIN_TOKEN,
            TIDINGS_SECRET_KEY="live-secret-" + "s" * 32,
            TIDINGS_EMBEDDED_WORKER="false",
            TIDINGS_PUBLIC_URL="http://tidings.test",
            TIDINGS_PUBLIC_RATE_LIMIT="100000",
            TIDINGS_LOG_LEVEL="WARNING",
        )
        self.env.update({f"TIDINGS_{k.upper()}": str(v) for k, v in settings.items()})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> LiveServer:
        subprocess.run(
            [sys.executable, "-c", CLI, "migrate"],
            env=self.env, cwd=ROOT, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CLI, "serve", "--port", str(self.port)],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"tidings serve did not start:\n{self.log.read_text()[-2000:]}")

    def rss_kib(self) -> int:
        """The server process's resident memory, from /proc."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
