"""The organisation's branding: name, logo, accent colour, postal address.

Stored in `site_settings` by the console, with the environment as the default. Email
rendering is synchronous and runs in the dispatcher, so it reads `current()`: the last
snapshot this process loaded. `refresh()` reloads it at most every REFRESH_SECONDS
(pages call it per request, cheaply), and `save()` replaces it at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.config import settings as env_settings
from app.db import utcnow
from app.errors import invalid
from app.issues import layout_registry
from app.media import urls as media
from app.media.models import MediaFile, SiteSetting

log = logging.getLogger("tidings.branding")
REFRESH_SECONDS = 30.0
FIELDS = ("name", "logo_media_id", "accent", "address")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
DEFAULT_ACCENT = "#0b5cad"


@dataclass(frozen=True)
class Branding:
    name: str
    address: str
    accent: str = DEFAULT_ACCENT
    logo_url: str = ""
    logo_media_id: int | None = None
    logo_width: int = 0
    logo_height: int = 0

    def email_context(self) -> dict[str, Any]:
        """What email layouts see as `organisation`."""
        return asdict(self)


def from_environment(settings: Settings) -> Branding:
    return Branding(name=settings.organisation_name, address=settings.organisation_address)


# The last snapshot per database (one in production; tests start many apps in turn).
_snapshots: dict[str, tuple[Branding, float]] = {}
_last: Branding | None = None


def current(settings: Settings | None = None) -> Branding:
    """The branding this process last loaded for these settings' database (or any)."""
    if settings is None:
        return _last or from_environment(env_settings)
    snapshot = _snapshots.get(settings.database_url)
    return snapshot[0] if snapshot else from_environment(settings)


def _fresh(settings: Settings) -> bool:
    snapshot = _snapshots.get(settings.database_url)
    return snapshot is not None and time.monotonic() - snapshot[1] < REFRESH_SECONDS


async def load(*, session: AsyncSession, settings: Settings) -> Branding:
    """The branding stored in the database over the environment's defaults."""
    rows = dict((await session.execute(select(SiteSetting.key, SiteSetting.value))).tuples().all())
    base = from_environment(settings)
    logo_id = int(rows["logo_media_id"]) if rows.get("logo_media_id", "").isdigit() else None
    logo = await session.get(MediaFile, logo_id) if logo_id else None
    branding = Branding(
        name=rows.get("name") or base.name,
        address=rows.get("address", base.address),
        accent=rows.get("accent") or base.accent,
        logo_media_id=logo.id if logo else None,
        logo_url=media.email_url(settings, logo) if logo else "",
        logo_width=(logo.email_width or logo.width) if logo else 0,
        logo_height=(logo.email_height or logo.height) if logo else 0,
    )
    _remember(settings, branding)
    return branding


async def refresh(*, session: AsyncSession, settings: Settings) -> Branding:
    """`current()`, reloaded when older than REFRESH_SECONDS; pages call this per request."""
    if _fresh(settings):
        return current(settings)
    try:
        return await load(session=session, settings=settings)
    except (DBAPIError, OSError):  # unmigrated or unreachable: keep what we have for a period
        kept = current(settings)
        _remember(settings, kept)
        return kept


async def save(
    *,
    session: AsyncSession,
    settings: Settings,
    name: str,
    address: str,
    accent: str,
    logo_media_id: int | None,
) -> Branding:
    """Validate and store the branding; 422 naming the field otherwise."""
    name, address, accent = name.strip(), address.strip(), accent.strip()
    if not 1 <= len(name) <= 200 or any(c in name for c in "\r\n\x00"):
        raise invalid("name", "the organisation name must be 1 to 200 characters on one line")
    if len(address) > 500 or "\x00" in address:
        raise invalid("address", "the postal address must be at most 500 characters")
    if not _COLOUR.fullmatch(accent):
        raise invalid("accent", "the accent colour must be #rrggbb, for example #0b5cad")
    if logo_media_id is not None and await session.get(MediaFile, logo_media_id) is None:
        raise invalid("logo_media_id", "no such image in the media library")
    values = {"name": name, "address": address, "accent": accent.lower(),
              "logo_media_id": str(logo_media_id or "")}  # fmt: skip
    for key, value in values.items():
        row = await session.get(SiteSetting, key)
        if row is None:
            session.add(SiteSetting(key=key, value=value))
        else:
            row.value, row.updated_at = value, utcnow()
    await session.flush()
    return await load(session=session, settings=settings)


def _remember(settings: Settings, branding: Branding) -> None:
    global _last
    _snapshots[settings.database_url] = (branding, time.monotonic())
    _last = branding


def reset() -> None:
    """Forget the snapshot (tests: each app starts from its own database)."""
    global _last
    _snapshots.clear()
    _last = None


class BrandingRefresh:
    """ASGI middleware: before a request, reload stale branding and stored layouts.

    At most one query each per REFRESH_SECONDS per process, so the sync email renderer
    and every public page see what the console saved, on every machine.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in _OPS_PATHS:
            await refresh_if_stale(scope["app"].state)
        await self.app(scope, receive, send)


async def refresh_if_stale(state: Any) -> None:
    """What the middleware does before a request; for paths answered ahead of it.

    One refresh at a time per app, and no one waits for it: when the snapshot goes stale
    every request in flight finds it so at once (138 refreshes in 0.3 s under a sign-up
    load, each a session and two queries, up to 477 ms, stalling the answers), so the
    first refreshes and the others go on with what is there, at most REFRESH_SECONDS old.
    """
    maker = getattr(state, "sessionmaker", None)
    settings = state.settings
    if maker is None or (_fresh(settings) and layout_registry.fresh(settings.database_url)):
        return
    if getattr(state, "branding_refreshing", False):
        return
    state.branding_refreshing = True
    try:
        async with maker() as session:
            await asyncio.wait_for(_load(session, settings), timeout=2)
    except Exception:  # noqa: BLE001 - a refresh must never fail the request it precedes
        log.warning("branding and stored layouts not refreshed", exc_info=True)
        # Keep what we have for another period: no retry on every request of an outage.
        _remember(settings, current(settings))
        layout_registry.postpone(settings.database_url)
    finally:
        state.branding_refreshing = False


async def _load(session: AsyncSession, settings: Settings) -> None:
    if not _fresh(settings):
        await refresh(session=session, settings=settings)
    await layout_registry.refresh(session=session, key=settings.database_url)


# Health checks and metrics answer without touching the database for this.
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
