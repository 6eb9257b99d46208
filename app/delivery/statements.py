"""Small helpers the queue's raw statements share: which backend, and UTC-typed times."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import UTCDateTime

UTC_TIME = UTCDateTime()


def is_pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def timed(sql: str, *times: str) -> Any:
    """`text(sql)` whose named parameters `times` are bound as UTC datetimes."""
    return text(sql).bindparams(*(bindparam(t, type_=UTC_TIME) for t in times))
