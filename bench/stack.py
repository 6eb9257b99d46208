"""A running Tidings for a benchmark: `tidings serve` and `tidings worker` processes on one
database, sending into the sink, driven through the real HTTP API."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.bench_render import BODY
from bench.infra import ADMIN_TOKEN, OUT, Processes, free_port, tidings, wait_http
from bench.seed import LIST_SLUG


def make_env(
    *,
    database_url: str,
    sink_port: int,
    var_dir: Path,
    embedded_worker: bool,
    dkim_key: Path | None = None,
    concurrency: int = 20,
    tracking: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of every Tidings process of one benchmark run.

    `tracking`: TIDINGS_TRACKING (off, aggregate, individual); None keeps the product's
    default (aggregate: opens and clicks tracked unless an issue says otherwise).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(
        TIDINGS_DATABASE_URL=database_url,
        TIDINGS_SMTP_URL=f"smtp://127.0.0.1:{sink_port}?max_connections={concurrency}",
        TIDINGS_PUBLIC_URL="http://news.example.org",
        TIDINGS_FROM="Weekly News <news@example.org>",
        TIDINGS_ADMIN_TOKEN=ADMIN_TOKEN,
        TIDINGS_SECRET_KEY="bench-secret-key-bench-secret-key-0123456789",
        TIDINGS_VAR_DIR=str(var_dir),
        TIDINGS_EMBEDDED_WORKER="true" if embedded_worker else "false",
        TIDINGS_CONCURRENCY=str(concurrency),
        TIDINGS_RETRY_DELAYS="1,2,5",
        # The load generator comes from one address: the per-address limit would answer 429.
        TIDINGS_PUBLIC_RATE_LIMIT="1000000000",
        TIDINGS_LOG_LEVEL="WARNING",
    )
    if dkim_key is not None:
        env.update(
            TIDINGS_DKIM_DOMAIN="example.org",
            TIDINGS_DKIM_SELECTOR="bench",
            TIDINGS_DKIM_KEY_FILE=str(dkim_key),
        )
    if tracking is not None:
        env["TIDINGS_TRACKING"] = tracking
    env.update(extra or {})
    return env


@dataclass
class Stack:
    """One `tidings serve` (and optionally workers) on one database."""

    procs: Processes
    env: dict[str, str]
    name: str
    port: int = 0
    server: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    client: httpx.AsyncClient | None = None
    serve_processes: int = 1  # `tidings serve --workers N`

    async def start(self) -> Stack:
        self.port = free_port()
        argv = tidings("serve", "--host", "127.0.0.1", "--port", str(self.port))
        if self.serve_processes > 1:
            argv += ["--workers", str(self.serve_processes)]
        self.server = self.procs.start(argv, env=self.env, log=OUT / f"{self.name}-serve.log")
        await wait_http(f"http://127.0.0.1:{self.port}/healthz")
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=120,
        )
        return self

    def start_workers(self, count: int) -> None:
        for i in range(count):
            log = OUT / f"{self.name}-worker{i}.log"
            self.workers.append(self.procs.start(tidings("worker"), env=self.env, log=log))

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        for proc in [*self.workers, *([self.server] if self.server else [])]:
            self.procs.stop(proc)

    @property
    def api(self) -> httpx.AsyncClient:
        assert self.client is not None
        return self.client

    async def create_issue(self, body: str = BODY, **fields: Any) -> int:
        """A draft issue of the benchmark newsletter to the `weekly` list.

        `fields`: more of the issue's fields, e.g. track_opens=True, track_clicks=True.
        """
        r = await self.api.post(
            "/api/v1/issues",
            json={
                "subject": "This week: nine stories",
                "preheader": "What happened, in brief",
                "lists": [LIST_SLUG],
                "format": "markdown",
                "body": body,
                **fields,
            },
        )
        r.raise_for_status()
        return int(r.json()["id"])

    async def send(self, issue_id: int, *, timeout: float = 120) -> tuple[float, dict[str, Any]]:
        """POST /send: its wall time in seconds and its answer (waited for up to `timeout` s)."""
        start = time.perf_counter()
        r = await self.api.post(f"/api/v1/issues/{issue_id}/send", json={}, timeout=timeout)
        elapsed = time.perf_counter() - start
        r.raise_for_status()
        return elapsed, r.json()

    async def stats(self, issue_id: int) -> dict[str, Any]:
        r = await self.api.get(f"/api/v1/issues/{issue_id}/stats")
        r.raise_for_status()
        return dict(r.json())

    async def wait_sent(self, issue_id: int, *, timeout: float) -> dict[str, Any]:
        """Poll the stats until the issue is `sent` (or paused/cancelled), bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats(issue_id)
            if stats["status"] in ("sent", "paused", "cancelled"):
                return stats
            if time.monotonic() > deadline:
                raise TimeoutError(f"issue {issue_id} not sent after {timeout:.0f} s: {stats}")
            dead = [p for p in [self.server, *self.workers] if p and p.poll() is not None]
            if dead:
                raise RuntimeError(f"{self.name}: a process exited; see bench/out/{self.name}-*")
            await asyncio.sleep(0.25)
