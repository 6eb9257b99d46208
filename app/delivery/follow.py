"""`tidings send ISSUE [--follow]`: start a send like the API does, then watch it to the end."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import make_engine, make_sessionmaker, utcnow

DONE = ("sent", "failed", "skipped", "cancelled", "bounced", "complained")
POLL = 0.5


async def send_cli(settings: Settings, issue_id: int, *, follow: bool) -> int:
    """Start sending an issue (exit 0), then with `follow` show progress until it ends."""
    from app.errors import Conflict, DomainError
    from app.issues import service

    console = Console(stderr=False)
    engine = make_engine(settings.database_url)
    maker = make_sessionmaker(engine)
    try:
        try:
            async with maker() as s, s.begin():
                status, recipients = await service.start_send(
                    session=s, settings=settings, issue_id=issue_id, send_at=None
                )
            console.print(f"issue {issue_id}: {status}, {recipients} recipients")
        except DomainError as exc:
            if not (follow and isinstance(exc, Conflict)):
                console.print(f"[red]cannot send issue {issue_id}: {exc.detail}[/red]")
                return 1
            console.print(f"issue {issue_id}: {exc.detail}; following it")
        if not follow:
            return 0
        if not await _dispatcher_alive(maker):
            console.print(
                "[yellow]no dispatcher has a heartbeat: start `tidings worker` "
                "(or `tidings serve`) for the send to progress[/yellow]"
            )
        final, reason = await _follow(maker, issue_id, console)
        console.print(f"issue {issue_id}: {final}" + (f" ({reason})" if reason else ""))
        return 0 if final == "sent" else 1
    finally:
        await engine.dispose()


async def _dispatcher_alive(maker: async_sessionmaker[AsyncSession]) -> bool:
    async with maker() as s:
        recent = await s.scalar(
            text("SELECT count(*) FROM workers WHERE heartbeat_at > :t").bindparams(
                t=utcnow() - timedelta(seconds=30)
            )
        )
    return bool(recent)


async def _progress(
    maker: async_sessionmaker[AsyncSession], issue_id: int
) -> tuple[str, str | None, int, int]:
    """(status, reason, done, recipients) of an issue, from its (issue_id, status) index."""
    async with maker() as s:
        row = (
            await s.execute(
                text("SELECT status, status_reason, recipients FROM issues WHERE id = :i"),
                {"i": issue_id},
            )
        ).one()
        done = await s.scalar(
            text(
                "SELECT count(*) FROM deliveries WHERE issue_id = :i AND status IN "  # noqa: S608 (constants only)
                "('" + "','".join(DONE) + "')"
            ),
            {"i": issue_id},
        )
    return row.status, row.status_reason, int(done or 0), int(row.recipients or 0)


async def _follow(
    maker: async_sessionmaker[AsyncSession], issue_id: int, console: Console
) -> tuple[str, str | None]:
    status, reason, done, total = await _progress(maker, issue_id)
    started, first_done = time.monotonic(), done
    if console.is_terminal:
        columns = (
            TextColumn(f"issue {issue_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.0f} msg/s"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("send", total=total or None, rate=0.0)
            while status in ("sending", "scheduled"):
                rate = (done - first_done) / max(0.001, time.monotonic() - started)
                bar.update(task, completed=done, total=total or None, rate=rate)
                await asyncio.sleep(POLL)
                status, reason, done, total = await _progress(maker, issue_id)
            bar.update(task, completed=done)
        return status, reason
    # Not a terminal (a log, a pipe): one plain line every few seconds instead of a bar.
    last = 0.0
    while status in ("sending", "scheduled"):
        if time.monotonic() - last >= 2:
            last = time.monotonic()
            rate = (done - first_done) / max(0.001, last - started)
            eta = f"{(total - done) / rate:.0f} s" if rate > 0 else "?"
            console.print(f"progress {done}/{total} {rate:.0f} msg/s eta {eta}")
        await asyncio.sleep(POLL)
        status, reason, done, total = await _progress(maker, issue_id)
    console.print(f"progress {done}/{total}")
    return status, reason
