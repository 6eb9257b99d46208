"""The parts of a fault scenario: seeded recipients, worker processes, an API app, waits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from tests.conftest import ADMIN_TOKEN, AppClient, start_client

# The scenarios' names for the delivery tests' helpers: one implementation of each.
from tests.delivery.helpers import counts as delivery_counts  # noqa: F401
from tests.delivery.helpers import received as received_counts  # noqa: F401
from tests.delivery.helpers import seed as _seed
from tests.delivery.helpers import send as start_send  # noqa: F401
from tests.smtp import SMTPServer

SECRET_KEY = "reliability-secret-" + "k" * 32
ROOT = Path(__file__).resolve().parents[2]


async def seed(url: str, count: int, slug: str = "rel") -> list[str]:
    """A single opt-in list `slug` with `count` confirmed, active members; their addresses."""
    return await _seed(url, count, slug)


def worker_env(url: str, smtp_url: str, var_dir: Path, **extra: Any) -> dict[str, str]:
    """The environment of a `tidings worker` process on this database and SMTP server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATABASE_URL=url,
        TIDINGS_SMTP_URL=smtp_url,
        TIDINGS_VAR_DIR=str(var_dir),
        TIDINGS_ADMIN_TOKEN=ADMIN_TOKEN,
        TIDINGS_SECRET_KEY=SECRET_KEY,
        TIDINGS_PUBLIC_URL="http://tidings.test",
        TIDINGS_RETRY_DELAYS="1,1,1,1,1,1,1,1",
        TIDINGS_LEASE_SECONDS="3",
        TIDINGS_BATCH_SIZE="50",
        TIDINGS_CONCURRENCY="10",
        TIDINGS_FAILURE_PAUSE_THRESHOLD="100000",
        TIDINGS_LOG_LEVEL="WARNING",
    )
    env.update({f"TIDINGS_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """One `tidings worker` subprocess that can be killed and started again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        self.starts += 1
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()", "worker"],
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to release leases or record what is in flight."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 40) -> float:
        """SIGTERM and wait; returns the seconds it took to exit."""
        assert self.proc is not None
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return float("inf")
        return time.monotonic() - start

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@contextlib.asynccontextmanager
async def api(url: str, smtp_url: str, var_dir: Path, **overrides: Any) -> AsyncIterator[AppClient]:
    """The HTTP app on `url`, without an embedded dispatcher unless asked."""
    values: dict[str, Any] = {
        "database_url": url,
        "smtp_url": smtp_url,
        "var_dir": var_dir,
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "public_url": "http://tidings.test",
        "embedded_worker": False,
        "public_rate_limit": 100000,
        "retry_delays": [1, 1, 1, 1, 1, 1, 1, 1],
    }
    values.update(overrides)
    client, lifespan = await start_client(Settings(**values))
    try:
        yield client
    finally:
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


async def create_issue(client: AppClient, slug: str = "rel", subject: str = "Reliability") -> int:
    """A small Markdown issue to `slug`, through the API; returns its id."""
    r = await client.post(
        "/api/v1/issues",
        json={
            "subject": subject,
            "lists": [slug],
            "format": "markdown",
            "body": "# Hello {{ subscriber.name }}\n\nA short issue.",
        },
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def wait_for(
    check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float = 0.5
) -> bool:
    """Poll `check` until it is true or `timeout` seconds pass (bounded in count and time)."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        with contextlib.suppress(Exception):
            if await check():
                return True
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(interval)
    return False


def all_received(server: SMTPServer, emails: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        got = received_counts(server)
        return all(got[e] for e in emails)

    return check
