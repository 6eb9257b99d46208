"""Cursor pagination shared by every list endpoint: opaque cursors over row ids.

One style everywhere: a route takes `limit: Limit = 100, cursor: Cursor = None`, its
service fetches `limit + 1` rows after `decode_cursor(cursor)`, and `page(rows, limit)`
cuts them into the items and the next cursor.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.exceptions import RequestValidationError

Limit = Annotated[int, Query(ge=1, le=1000, description="items per page")]
# The largest id either database stores (a signed 64-bit integer); past it a cursor would
# overflow the driver (a 500) instead of naming a row.
MAX_ID = 2**63 - 1
# Row ids in paths, bounded by their column's type (Integer or BigInteger): past it the
# answer is a 422, never an overflow in the driver.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a row id")]
BigRowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="the next_cursor of the previous page")
]


def encode_cursor(last_id: int) -> str:
    """An opaque cursor that continues after the row with this id."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The row id a cursor continues after; None for the first page.

    A cursor this API did not make is a 422 in FastAPI's own shape (a list of located
    errors), the one the OpenAPI document promises for every bad query parameter.
    """
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "id" or not value.isascii() or not value.isdigit() or int(value) > MAX_ID:
            raise ValueError(raw)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "cursor is not one this API returned",
                    "input": cursor,
                }
            ]
        ) from None


def page(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """Cut a `limit + 1` fetch into the page and the cursor of the next one (None: the last)."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].id)
    return rows, None
