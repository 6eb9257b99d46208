"""This process's copy of the layouts stored in the database (the `email_layouts` table).

The bottom of the layout code: it imports no renderer, so the renderer (layout.py reads a
stored layout's source here), the console (stored_layouts.py adds and checks layouts) and
the per-request refresh (app.branding's middleware) can all use it without a circle.
`refresh()` reloads the copy at most every REFRESH_SECONDS per database unless forced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.media.models import EmailLayout

REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class StoredLayout:
    """A stored layout's source: MJML and the plain-text layout ("" for just the body)."""

    name: str
    mjml: str
    text: str


_registry: dict[str, StoredLayout] = {}
_loaded_at: dict[str, float] = {}


def get(name: str) -> StoredLayout | None:
    """The stored layout of that name, as this process last loaded it, or None."""
    return _registry.get(name)


def put(layout: StoredLayout) -> None:
    """Add or replace one layout in this process's copy (the database is the caller's)."""
    _registry[layout.name] = layout


def drop(name: str) -> None:
    """Forget one layout in this process's copy."""
    _registry.pop(name, None)


def stored_names() -> list[str]:
    """The names of every stored layout, sorted."""
    return sorted(_registry)


async def refresh(*, session: AsyncSession, key: str = "", force: bool = False) -> None:
    """Reload the registry from the database, at most every REFRESH_SECONDS unless forced."""
    if not force and fresh(key):
        return
    try:
        rows = (await session.scalars(select(EmailLayout))).all()
    except (DBAPIError, OSError):  # not migrated yet, or the database is not answering
        postpone(key)  # keep what we have for a period rather than retry every request
        return
    _registry.clear()
    _registry.update({r.name: StoredLayout(r.name, r.mjml, r.text) for r in rows})
    _loaded_at[key] = time.monotonic()


def fresh(key: str) -> bool:
    """Whether the registry was loaded for this database within REFRESH_SECONDS."""
    return time.monotonic() - _loaded_at.get(key, 0.0) < REFRESH_SECONDS


def postpone(key: str) -> None:
    """Keep the registry as it is for another period (the database did not answer)."""
    _loaded_at[key] = time.monotonic()


def clear() -> None:
    """Forget every stored layout and when they were loaded."""
    _registry.clear()
    _loaded_at.clear()
