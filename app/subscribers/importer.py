"""Streamed CSV import: bytes in, validated rows out, written in batches, never all in memory.

Used by `POST /api/v1/subscribers/import` and by `tidings import`. Each batch of rows is one
transaction of a handful of statements (one SELECT per table, one multi-row INSERT, one
UPDATE pass), so a 100,000-row file takes about a hundred round trips, not 100,000.
"""

from __future__ import annotations

import asyncio
import csv
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import utcnow
from app.models import MailingList, Subscriber, Subscription, Suppression
from app.subscribers.addresses import InvalidAddress, normalize, suppression_hash

BATCH_ROWS = 1000
MAX_ERRORS = 1000
MAX_RECORD_CHARS = 1_000_000  # an unclosed quote must not swallow the rest of the file
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ImportFailed(Exception):
    """The file as a whole cannot be imported (no email column, not UTF-8 from the start)."""


class BadLine(Exception):
    """One record that cannot be read; the import goes on without it."""

    def __init__(self, line: int, error: str) -> None:
        super().__init__(error)
        self.line = line
        self.error = error


class _Feed:
    """The iterator csv.reader pulls from: lines of one complete record at a time."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if not self.lines:
            raise StopIteration
        return self.lines.popleft()


class RecordReader:
    """Turns byte chunks into (line number, fields) CSV records.

    Lines are split on LF, which never occurs inside a UTF-8 multi-byte sequence, and
    decoded one by one, so a bad byte costs one record rather than the decoder's state. A
    record is complete at the end of a line when its double quotes balance (CSV doubles a
    quote inside a quoted field), so csv.reader is only ever handed whole records.
    """

    def __init__(self) -> None:
        self._rest = b""
        self._line = 0
        self._start = 0
        self._open: list[str] = []
        self._chars = 0
        self._quotes = 0
        self._feed = _Feed()
        self._reader = csv.reader(self._feed)

    def feed(self, chunk: bytes) -> Iterator[tuple[int, list[str]] | BadLine]:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for raw in lines:
            yield from self._take(raw)

    def finish(self) -> Iterator[tuple[int, list[str]] | BadLine]:
        if self._rest:
            yield from self._take(self._rest)
            self._rest = b""
        if self._open:
            yield BadLine(self._start, "a quoted field is never closed")
            self._open = []

    def _take(self, raw: bytes) -> Iterator[tuple[int, list[str]] | BadLine]:
        self._line += 1
        if self._line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # the byte order mark Excel writes
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self._open, self._quotes = [], 0
            yield BadLine(self._line, f"not UTF-8 (byte {exc.start + 1} of the line)")
            return
        if not self._open:
            self._start, self._chars = self._line, 0
        self._open.append(text + "\n")
        self._chars += len(text)
        self._quotes += text.count('"')
        if self._quotes % 2:
            if self._chars > MAX_RECORD_CHARS:
                self._open, self._quotes = [], 0
                yield BadLine(self._start, "a quoted field is never closed")
            return
        self._feed.lines.extend(self._open)
        self._open, self._quotes = [], 0
        try:
            yield self._start, next(self._reader)
        except (csv.Error, StopIteration) as exc:
            self._feed.lines.clear()
            yield BadLine(self._start, f"not valid CSV: {exc}")


@dataclass
class Row:
    line: int
    email: str
    key: str
    name: str
    attributes: dict[str, str]


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


class Columns:
    """Where email and name are in the header; every other named column is an attribute."""

    def __init__(self, header: list[str]) -> None:
        names = [h.strip() for h in header]
        lowered = [n.lower() for n in names]
        if "email" not in lowered:
            raise ImportFailed("the header row has no 'email' column")
        seen = [n for n in lowered if n]
        duplicates = sorted({n for n in seen if seen.count(n) > 1})
        if duplicates:
            raise ImportFailed(f"the header row repeats the column(s) {', '.join(duplicates)}")
        self.width = len(names)
        self.email = lowered.index("email")
        self.name = lowered.index("name") if "name" in lowered else None
        self.attributes = [
            (i, n) for i, n in enumerate(names) if n and i not in (self.email, self.name)
        ]

    def row(self, line: int, fields: list[str], *, check_deliverability: bool) -> Row:
        """A validated row; ValueError says what is wrong with it."""
        if len(fields) > self.width:
            raise ValueError(f"{len(fields)} fields, but the header has {self.width}")
        fields = fields + [""] * (self.width - len(fields))
        try:
            email, key = normalize(fields[self.email], check_deliverability=check_deliverability)
        except InvalidAddress as exc:
            shown = fields[self.email].strip()[:100] or "(empty)"
            raise ValueError(f"invalid email address {shown!r}: {exc}") from None
        name = fields[self.name].strip() if self.name is not None else ""
        if _CONTROL.search(name) or len(name) > 200:
            raise ValueError("the name has control characters or is over 200 characters")
        attributes = {n: fields[i].strip() for i, n in self.attributes if fields[i].strip()}
        return Row(line, email, key, name, attributes)


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
    columns: Columns | None = None
    batch: list[Row] = []
    seen: set[int] = set()  # hashes of the keys so far: a repeated address is the same person
    written = False
    # One batch is written while the next is parsed: the database wait and the CPU overlap.
    writing: asyncio.Task[None] | None = None

    async def write(rows: list[Row]) -> None:
        nonlocal writing, written
        if writing is not None:
            await writing
        written = True
        writing = asyncio.create_task(
            write_batch(sessionmaker=sessionmaker, list_id=list_id, rows=rows, result=result)
        )

    async def take(item: tuple[int, list[str]] | BadLine) -> None:
        nonlocal columns, batch
        if isinstance(item, BadLine):
            if columns is None or (not written and item.error.startswith("not UTF-8")):
                raise ImportFailed(f"line {item.line}: {item.error}; save the file as UTF-8 CSV")
            result.error(item.line, item.error)
            return
        line, fields = item
        if columns is None:
            columns = Columns(fields)
            return
        if not any(f.strip() for f in fields):
            return  # a blank line
        try:
            row = columns.row(line, fields, check_deliverability=check_deliverability)
        except ValueError as exc:
            result.error(line, str(exc))
            return
        if hash(row.key) in seen:
            result.skipped += 1
            return
        seen.add(hash(row.key))
        batch.append(row)
        if len(batch) >= BATCH_ROWS:
            await write(batch)
            batch = []

    try:
        async for chunk in chunks:
            for item in reader.feed(chunk):
                await take(item)
            if on_progress is not None:
                on_progress(len(chunk))
        for item in reader.finish():
            await take(item)
        if columns is None:
            raise ImportFailed("the file is empty: it needs a header row with an 'email' column")
        if batch:
            await write(batch)
    finally:
        if writing is not None:  # even when the upload breaks off: finish the batch in flight
            await writing
    return result


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def write_batch(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    list_id: int,
    rows: list[Row],
    result: ImportResult,
) -> None:
    """Write one batch in one transaction; a database failure costs this batch, reported."""
    try:
        async with sessionmaker() as session, session.begin():
            counts = await _write(session=session, list_id=list_id, rows=rows)
    except DBAPIError as exc:
        for row in rows:
            result.error(row.line, f"not saved: database error {type(exc.orig).__name__}")
        return
    result.created += counts[0]
    result.updated += counts[1]
    result.skipped += counts[2]


async def _write(*, session: AsyncSession, list_id: int, rows: list[Row]) -> tuple[int, int, int]:
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # No fsync wait per batch: a crash can lose only the last batches, and re-running an
        # import is harmless (it changes nothing twice), so durability per batch buys nothing.
        await session.execute(text("SET LOCAL synchronous_commit = off"))
        # asyncpg keeps prepared statements, and PostgreSQL would reuse a generic plan made
        # while the table was still empty: a sequential scan, ever slower as the import grows it.
        await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    hashes = {suppression_hash(r.key): r for r in rows}
    suppressed = set(
        await session.scalars(
            select(Suppression.email_hash).where(Suppression.email_hash.in_(list(hashes)))
        )
    )
    rows = [r for h, r in hashes.items() if h not in suppressed]
    skipped = len(suppressed)
    found = await session.execute(
        select(
            Subscriber.id,
            Subscriber.email_key,
            Subscriber.name,
            Subscriber.attributes,
            Subscriber.status,
        ).where(Subscriber.email_key.in_([r.key for r in rows]))
    )
    existing = {key: (sid, name, attrs or {}, status) for sid, key, name, attrs, status in found}
    ids = [v[0] for v in existing.values()]
    member = dict(
        (
            await session.execute(
                select(Subscription.subscriber_id, Subscription.status).where(
                    Subscription.list_id == list_id, Subscription.subscriber_id.in_(ids)
                )
            )
        ).all()
    )
    new = [r for r in rows if r.key not in existing]
    changes: list[dict[str, Any]] = []
    join: list[int] = []  # existing, active, not yet on the list
    confirm: list[int] = []  # existing, active, pending on the list
    updated = 0
    for row in rows:
        if row.key not in existing:
            continue
        sid, name, attrs, status = existing[row.key]
        membership = member.get(sid)
        if status != "active" or membership == "unsubscribed":
            skipped += 1  # never reactivated or resubscribed by an import
            continue
        merged = {**attrs, **row.attributes}
        new_name = row.name or name
        if merged != attrs or new_name != name:
            changes.append({"id": sid, "name": new_name, "attributes": merged, "updated_at": now})
        if membership is None:
            join.append(sid)
        elif membership == "pending":
            confirm.append(sid)
        if merged != attrs or new_name != name or membership != "confirmed":
            updated += 1
        else:
            skipped += 1
    created_ids: list[int] = []
    # executemany of one cached statement: SQLAlchemy sends it as multi-row VALUES pages
    # ("insertmanyvalues"), without compiling a 7,000-parameter statement per batch.
    if new:
        inserted = await session.execute(
            _insert(session, Subscriber)
            .on_conflict_do_nothing(index_elements=["email_key"])
            .returning(Subscriber.id),
            [
                {
                    "email": r.email,
                    "email_key": r.key,
                    "name": r.name,
                    "attributes": r.attributes,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
                for r in new
            ],
        )
        created_ids = list(inserted.scalars())
        skipped += len(new) - len(created_ids)  # signed up by someone else meanwhile
    if created_ids or join:
        await session.execute(
            _insert(session, Subscription).on_conflict_do_nothing(),
            [
                {
                    "subscriber_id": sid,
                    "list_id": list_id,
                    "status": "confirmed",
                    "created_at": now,
                    "confirmed_at": now,
                }
                for sid in created_ids + join
            ],
        )
    if confirm:
        await session.execute(
            update(Subscription)
            .where(Subscription.list_id == list_id, Subscription.subscriber_id.in_(confirm))
            .values(status="confirmed", confirmed_at=now)
        )
    if changes:
        await session.execute(update(Subscriber), changes)
    return len(created_ids), updated, skipped


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
