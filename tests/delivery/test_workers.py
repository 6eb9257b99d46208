"""Real `tidings worker` processes on one PostgreSQL: sharing, SIGKILL, SIGTERM, send --follow."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.delivery.claims import FLUSH_AT
from tests.conftest import AppClient
from tests.delivery.helpers import counts, new_issue, received, seed, send, status_of, wait_for
from tests.smtp import SMTPServer

ROOT = Path(__file__).resolve().parents[2]
BATCH, CONCURRENCY = 100, 10
pytestmark = pytest.mark.slow


def worker(
    db: str, smtpd: SMTPServer, tmp_path: Path, secret: str, *, lease: int = 30
) -> subprocess.Popen[bytes]:
    """A `tidings worker`; its lease outlasts a starved process on a loaded machine, so only
    a worker that is killed has claims that expire (and may repeat)."""
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": db,
        "TIDINGS_SMTP_URL": smtpd.url,
        "TIDINGS_SECRET_KEY": secret,
        "TIDINGS_PUBLIC_URL": "http://tidings.test",
        "TIDINGS_VAR_DIR": str(tmp_path / "var"),
        "TIDINGS_LEASE_SECONDS": str(lease),
        "TIDINGS_RETRY_DELAYS": "1,1,1",
        "TIDINGS_BATCH_SIZE": str(BATCH),
        "TIDINGS_CONCURRENCY": str(CONCURRENCY),
        "TIDINGS_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


async def wait_sent(client: AppClient, issue_id: int, timeout: float = 240) -> None:
    async def done() -> bool:
        return await status_of(client, issue_id) == "sent"

    await wait_for(done, timeout, f"issue {issue_id} to be sent")


async def start(app_factory: Callable[..., Any], db: str, n: int) -> tuple[AppClient, int, str]:
    assert db.startswith("postgresql"), "marked postgres_only: SQLite has one writer"
    client = await app_factory()
    await seed(db, n)
    issue_id = await new_issue(client)
    return client, issue_id, str(client.app.state.settings.secret_key_value)


@pytest.mark.postgres_only
async def test_three_workers_send_each_recipient_exactly_once(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer, tmp_path: Path
) -> None:
    client, issue_id, secret = await start(app_factory, db, 2000)
    procs = [worker(db, smtpd, tmp_path, secret) for _ in range(3)]
    try:
        await send(client, issue_id)
        await wait_sent(client, issue_id)
    finally:
        stop_all(procs)
    got = received(smtpd)
    assert len(got) == 2000 and max(got.values()) == 1
    servers = {r.recipients[0] for r in smtpd.received}
    assert len(servers) == 2000
    assert await counts(db, issue_id) == {"sent": 2000}


@pytest.mark.postgres_only
async def test_sigkill_mid_send_loses_no_one(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer, tmp_path: Path
) -> None:
    client, issue_id, secret = await start(app_factory, db, 2000)
    first = worker(db, smtpd, tmp_path, secret, lease=10)  # killed: its claims must expire
    procs = [first]
    try:
        await send(client, issue_id)
        await wait_for(_received(smtpd, 400), 60, "the first worker to be well under way")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        held = (await counts(db, issue_id)).get("sending", 0)  # claimed, result never written
        procs.append(worker(db, smtpd, tmp_path, secret))
        await wait_sent(client, issue_id)
    finally:
        stop_all(procs)
    got = received(smtpd)
    duplicates = sum(n - 1 for n in got.values())
    print(f"SIGKILL: {len(got)} recipients, {duplicates} duplicates, {held} held at the kill")
    assert len(got) == 2000
    # Only what the killed worker held (claimed, in flight, results not yet written) can repeat,
    # and what it holds is bounded by the pipeline, not by the send: the batch it works
    # through and the next, claimed ahead; the send queue (2 x concurrency); each sender's
    # message and the next of its run; the results waiting for the writer, FLUSH_AT and as
    # many again gathered while a write is in flight. (Seen: 232 held, 64 sent twice.)
    bound = 2 * BATCH + 2 * CONCURRENCY + 2 * CONCURRENCY + 2 * FLUSH_AT
    assert duplicates <= held <= bound
    assert await counts(db, issue_id) == {"sent": 2000}


@pytest.mark.postgres_only
async def test_sigterm_drains_and_exits_without_duplicates(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer, tmp_path: Path
) -> None:
    client, issue_id, secret = await start(app_factory, db, 2000)
    first = worker(db, smtpd, tmp_path, secret)
    procs = [first]
    try:
        await send(client, issue_id)
        await wait_for(_received(smtpd, 400), 60, "the first worker to be well under way")
        first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.wait, 30)  # must exit within 30 s
        assert code == 0, first.stderr.read() if first.stderr else ""
        c = await counts(db, issue_id)
        assert c.get("sending", 0) == 0  # nothing left claimed
        assert c.get("sent", 0) == len(smtpd.received)
        procs.append(worker(db, smtpd, tmp_path, secret))
        await wait_sent(client, issue_id)
    finally:
        stop_all(procs)
    assert received(smtpd) == Counter(r.recipients[0] for r in smtpd.received)
    assert max(received(smtpd).values()) == 1 and len(received(smtpd)) == 2000


async def test_send_follow_prints_progress_until_sent(
    app_factory: Callable[..., Any], db: str, smtpd: SMTPServer
) -> None:
    client = await app_factory(embedded_worker=True, smtp_url=f"{smtpd.url}?rate=50")
    emails = await seed(db, 150)
    issue_id = await new_issue(client)
    settings = client.app.state.settings
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": db,
        "TIDINGS_SECRET_KEY": settings.secret_key_value,
        "TIDINGS_VAR_DIR": str(settings.var_dir),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from app.cli import main; main()", "send", str(issue_id),
        "--follow", cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert "150 recipients" in text and "progress" in text and "msg/s" in text
    assert "progress 150/150" in text and text.rstrip().endswith(f"issue {issue_id}: sent")
    assert received(smtpd) == Counter(emails)


def _received(smtpd: SMTPServer, n: int) -> Callable[[], Any]:
    async def check() -> bool:
        return len(smtpd.received) >= n

    return check
