"""A filtered table of subscribers as CSV, streamed page by page, never all in memory.

The same query as the API's `GET /api/v1/subscribers` (search_subscribers), walked in
keyset pages, each read in a short session of its own: a million rows cost a thousand
index-range reads, and no transaction stays open while the client downloads.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.subscribers import service

PAGE_ROWS = 1000
HEADER = ["email", "name", "status", "lists", "created_at", "attributes"]
# A spreadsheet runs a cell that starts like a formula (CSV injection); a leading quote
# makes it text. Addresses are left as they are: they are the identity of a row.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _row(subscriber: Any) -> list[str]:
    lists = ";".join(f"{m['slug']}:{m['status']}" for m in service.memberships(subscriber))
    attributes = subscriber.attributes or {}
    return [
        subscriber.email,
        _text_cell(subscriber.name or ""),
        subscriber.status,
        lists,
        subscriber.created_at.isoformat(),
        _text_cell(json.dumps(attributes, ensure_ascii=False)) if attributes else "",
    ]


def _encode(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


async def check_filters(
    *, session: AsyncSession, list_slug: str | None, status: str | None, q: str | None
) -> None:
    """Refuse an unknown list or a status that does not go with it, before streaming starts."""
    await service.search_subscribers(
        session=session, after=0, limit=1, q=q, list_slug=list_slug, status=status
    )


async def subscribers_csv(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    list_slug: str | None = None,
    status: str | None = None,
    q: str | None = None,
) -> AsyncIterator[bytes]:
    """The CSV bytes of every subscriber matching the filters, in order of id."""
    yield _encode([HEADER])
    after = 0
    while True:
        async with sessionmaker() as session:
            rows = await service.search_subscribers(
                session=session,
                after=after,
                limit=PAGE_ROWS,
                q=q,
                list_slug=list_slug,
                status=status,
            )
            chunk = _encode([_row(s) for s in rows])
        if chunk:
            yield chunk
        if len(rows) < PAGE_ROWS:
            return
        after = rows[-1].id


def export_filename(list_slug: str | None) -> str:
    """The download's file name: the list's slug, or all subscribers."""
    return f"subscribers-{list_slug}.csv" if list_slug else "subscribers.csv"
