"""Streamed CSV import: bytes in, validated rows out, written in batches, never all in memory.

Used by `POST /api/v1/subscribers/import` and by `tidings import`. Reading and validating
is csvrows.py, writing a batch is import_writes.py; this module runs the two side by
side, so batches are written (two at a time on PostgreSQL) while the next is parsed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import driver_transaction, on_postgresql, transaction
from app.models import MailingList
from app.subscribers.csvrows import (
    BadLine,
    Columns,
    ImportAddresses,
    ImportFailed,
    RecordReader,
    Row,
)
from app.subscribers.import_writes import write_batch_pg, write_batch_sqlite
from app.webhooks import events

__all__ = ["ImportFailed", "ImportResult", "import_csv", "import_file_cli"]

# Rows per transaction. Past a few thousand the per-batch cost (a handful of round trips)
# is noise; the batch in flight is what an interrupted import can lose, and what it holds.
BATCH_ROWS = 5000
WRITERS = 2  # batches in flight on PostgreSQL
MAX_ERRORS = 1000


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    errors_omitted: int = 0

    def error(self, line: int, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "error": message})
        else:
            self.errors_omitted += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "errors": self.errors,
            "errors_omitted": self.errors_omitted,
        }


async def import_csv(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    list_id: int,
    chunks: AsyncIterator[bytes],
    check_deliverability: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import a CSV byte stream into one list; ImportFailed only while nothing is written yet."""
    result = ImportResult()
    reader = RecordReader()
    addresses = ImportAddresses(check_deliverability=check_deliverability)
    columns: Columns | None = None
    batch: list[Row] = []
    seen: set[int] = set()  # hashes of the keys so far: a repeated address is the same person
    written = False
    # Batches are written while the next is parsed, on PostgreSQL two at a time on two
    # connections: a backend is one process, and the machine's other core would idle.
    # Two batches never hold the same address (`seen`), so neither waits for the other.
    # SQLite has one writer: a second transaction would only wait for the lock.
    postgres = on_postgresql(sessionmaker)
    writing: set[asyncio.Task[None]] = set()

    async def settle(most: int) -> None:
        """Wait until at most `most` batches are in flight (a failure is raised here)."""
        while len(writing) > most:
            done, _ = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
            writing.difference_update(done)
            for task in done:
                task.result()

    async def write(rows: list[Row]) -> None:
        nonlocal written
        await settle(WRITERS - 1 if postgres else 0)
        written = True
        writing.add(
            asyncio.create_task(
                write_batch(sessionmaker=sessionmaker, list_id=list_id, rows=rows, result=result)
            )
        )

    def take(item: tuple[int, list[str]] | BadLine) -> None:
        nonlocal columns
        if isinstance(item, BadLine):
            if columns is None or (not written and item.error.startswith("not UTF-8")):
                raise ImportFailed(f"line {item.line}: {item.error}; save the file as UTF-8 CSV")
            result.error(item.line, item.error)
            return
        line, fields = item
        if columns is None:
            columns = Columns(fields, addresses)
            return
        if not (fields and fields[0].strip()) and not any(f.strip() for f in fields):
            return  # a blank line
        try:
            row = columns.row(line, fields)
        except ValueError as exc:
            result.error(line, str(exc))
            return
        key = hash(row.key)
        if key in seen:
            result.skipped += 1
            return
        seen.add(key)
        batch.append(row)

    try:
        async for chunk in chunks:
            for item in reader.feed(chunk):
                take(item)
                if len(batch) >= BATCH_ROWS:
                    await write(batch)
                    batch = []
            if on_progress is not None:
                on_progress(len(chunk))
        for item in reader.finish():
            take(item)
        if columns is None:
            raise ImportFailed("the file is empty: it needs a header row with an 'email' column")
        if batch:
            await write(batch)
    finally:
        if writing:  # even when the upload breaks off: finish the batches in flight
            await asyncio.wait(writing)
    await settle(0)  # a batch's failure other than the database's is raised, not lost
    await refresh_statistics(sessionmaker, written=result.created + result.updated)
    return result


# Past this many rows written, or a tenth of what the table held, the planner's statistics
# are stale enough to matter: a send right after importing into an empty database ran at a
# third of its speed, its statements planned for empty tables (issue 15).
ANALYZE_ROWS = 10_000

_REFRESH = "SELECT gin_clean_pending_list(i) FROM to_regclass($1) i WHERE i IS NOT NULL"


async def refresh_statistics(
    sessionmaker: async_sessionmaker[AsyncSession], *, written: int
) -> None:
    """ANALYZE the tables an import grew (PostgreSQL; SQLite's planner keeps no such figures)."""
    if not written or not on_postgresql(sessionmaker):
        return
    async with driver_transaction(sessionmaker) as conn:
        before = await conn.fetchval(
            "SELECT reltuples FROM pg_class WHERE oid = 'subscribers'::regclass"
        )
        if written < ANALYZE_ROWS and written * 10 < max(before, 0):
            return
        # The search index's pending list goes into the index proper too: until a vacuum
        # it is read row by row and priced as such (migrations 0010, 0017).
        await conn.execute(_REFRESH, "ix_subscribers_search_trgm")
        await conn.execute("ANALYZE subscribers, subscriptions")


async def write_batch(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    list_id: int,
    rows: list[Row],
    result: ImportResult,
) -> None:
    """Write one batch in one transaction; a database failure costs this batch, reported."""
    try:
        if on_postgresql(sessionmaker):
            async with sessionmaker() as session:  # remembered a few seconds: seldom a query
                wanted = await events.subscribed_events(session)
            async with driver_transaction(sessionmaker) as conn:
                counts = await write_batch_pg(conn, list_id=list_id, rows=rows, wanted=wanted)
        else:
            async with transaction(sessionmaker) as session:
                counts = await write_batch_sqlite(session, list_id=list_id, rows=rows)
    except (DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        name = type(getattr(exc, "orig", None) or exc).__name__
        for row in rows:
            result.error(row.line, f"not saved: database error {name}")
        return
    result.created += counts[0]
    result.updated += counts[1]
    result.skipped += counts[2]


async def _file_chunks(path: Path, size: int = 1 << 20) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(size):
            yield chunk


async def import_file_cli(settings: Settings, path: Path, slug: str) -> int:
    """`tidings import`: the same import from a file, with a progress bar; the exit code."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from app.db import make_engine, make_sessionmaker

    console = Console(stderr=True)
    engine = make_engine(settings.database_url)
    try:
        maker = make_sessionmaker(engine)
        async with maker() as session:
            list_id = await session.scalar(select(MailingList.id).where(MailingList.slug == slug))
        if list_id is None:
            console.print(f"[red]no list with slug {slug!r}[/red] (create it first)")
            return 1
        size = (await asyncio.to_thread(path.stat)).st_size
        started = time.perf_counter()
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            task = progress.add_task(f"importing {path.name}", total=size)
            result = await import_csv(
                sessionmaker=maker,
                list_id=list_id,
                chunks=_file_chunks(path),
                check_deliverability=settings.check_deliverability,
                on_progress=lambda n: progress.advance(task, n),
            )
    except ImportFailed as exc:
        console.print(f"[red]import failed:[/red] {exc}")
        return 1
    finally:
        await engine.dispose()
    elapsed = time.perf_counter() - started
    rows = result.created + result.updated + result.skipped + len(result.errors)
    rows += result.errors_omitted
    for error in result.errors[:20]:
        console.print(f"line {error['line']}: {error['error']}", markup=False, highlight=False)
    if len(result.errors) + result.errors_omitted > 20:
        console.print(f"... and {len(result.errors) + result.errors_omitted - 20} more errors")
    print(
        f"created {result.created}, updated {result.updated}, skipped {result.skipped}, "
        f"errors {len(result.errors) + result.errors_omitted} "
        f"({rows} rows in {elapsed:.1f} s, {rows / max(elapsed, 1e-9):,.0f} rows/s)"
    )
    return 0
