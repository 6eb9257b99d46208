"""What the console's editor needs beside the API: checks while typing, saves that never
silently overwrite another person's, the preview's size and warnings, and schedule input.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, DomainError, invalid
from app.issues import preview_cache, service
from app.issues.schemas import IssuePatch
from app.models import Issue

GMAIL_CLIP_BYTES = 102 * 1024  # Gmail cuts a message's HTML past this and hides the rest
_LINE = re.compile(r"\bline (\d+)")


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    line: int | None


def problems(settings: Settings, values: dict[str, Any]) -> list[Problem]:
    """The same check the API runs at create and update, as located problems (empty: fine)."""
    try:
        service.check_renderable(settings, values)
    except DomainError as exc:
        field = exc.loc[-1] if exc.loc else "body"
        match = _LINE.search(exc.detail)
        return [Problem(field, exc.detail, int(match[1]) if match else None)]
    return []


def version_of(issue: Issue) -> str:
    """The token an editor sends back with a save: the issue's last change, to the microsecond."""
    return issue.updated_at.astimezone(UTC).isoformat()


async def save(
    *,
    session: AsyncSession,
    settings: Settings,
    issue_id: int,
    version: str,
    data: IssuePatch,
) -> Issue:
    """Save an editor's changes only if nobody saved since it loaded `version`; else 409.

    The guarded UPDATE claims the version first (a row lock on PostgreSQL, the write lock
    on SQLite), so of two saves racing from one version exactly one wins.
    """
    try:
        seen = datetime.fromisoformat(version)
    except ValueError:
        raise invalid("version", "the form's version is not one this page sent") from None
    claimed = await session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.updated_at == seen)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
        current = await service.get(session=session, issue_id=issue_id)
        at = current.updated_at.astimezone(UTC).strftime("%H:%M:%S UTC")
        raise Conflict(
            f"someone else saved this issue at {at}, after you opened it; nothing of yours was"
            " saved. Copy your text, reload the page to see their version, and edit again."
        )
    return await service.update_issue(session=session, settings=settings, issue_id=issue_id,
                                      data=data)  # fmt: skip


class _Audit(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.no_alt: list[str] = []
        self.insecure: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and not (values.get("alt") or "").strip():
            self.no_alt.append(values.get("src") or "(no src)")
        if tag == "a" and (values.get("href") or "").lower().startswith("http://"):
            self.insecure.append(values.get("href") or "")


def preview_report(html: str, *, public_url: str) -> dict[str, Any]:
    """preview_report_of, remembered for the last few previews (a copy: callers may change it)."""
    found = _report(html, public_url)
    return found | {"warnings": list(found["warnings"])}


@lru_cache(maxsize=16)  # the same version previewed again: no second parse of its HTML
def _report(html: str, public_url: str) -> dict[str, Any]:
    return preview_report_of(html, public_url=public_url)


def preview_report_of(html: str, *, public_url: str) -> dict[str, Any]:
    """The size against Gmail's clip, and warnings: images without alt, links not https.

    Our own links (unsubscribe, preferences, archive) all start with the public URL: the
    author cannot change them, so they are one warning about that URL, not one per link.
    """
    audit = _Audit()
    audit.feed(html)
    size = len(html.encode())
    own = public_url.rstrip("/") + "/"
    warnings = [f"An image has no alt text: {src}" for src in audit.no_alt]
    insecure = list(dict.fromkeys(audit.insecure))
    warnings += [f"A link is not https: {href}" for href in insecure if not href.startswith(own)]
    if any(href.startswith(own) for href in insecure):
        warnings.append(
            f"The public URL {public_url} is not https: the unsubscribe, preference and archive"
            " links of every message use it (TIDINGS_PUBLIC_URL)."
        )
    if size > GMAIL_CLIP_BYTES:
        warnings.append(f"The HTML is {size / 1024:.0f} KB: Gmail clips messages over 102 KB.")
    return {"bytes": size, "clip_bytes": GMAIL_CLIP_BYTES, "warnings": warnings}


async def render_preview(
    *, session: AsyncSession, settings: Settings, issue: Issue, subscriber_id: int | None,
    sample: str = "named",
) -> dict[str, Any]:  # fmt: skip
    """HTML, text and subject from the compiled issue the dispatcher sends, with the report.

    The compiled issue comes from preview_cache: only the first preview of a version compiles.
    """
    from app.issues import testsend

    r = await testsend.preview_recipient(
        session=session, settings=settings, issue_id=issue.id, subscriber_id=subscriber_id,
        sample="nameless" if sample == "nameless" else "named",
    )  # fmt: skip
    compiled = await preview_cache.compiled(settings, issue)

    def parts() -> dict[str, Any]:  # one trip to a worker thread: on a busy machine each costs
        html = compiled.render_html(r)
        report = preview_report(html, public_url=settings.public_url)
        return {"html": html, "text": compiled.render_text(r),
                "subject": compiled.render_subject(r), **report}  # fmt: skip

    return await asyncio.to_thread(parts)


def local_send_time(day: str, clock: str, zone: str, *, now: datetime | None = None) -> datetime:
    """A date and time in the person's time zone, as UTC; 422 with the reason otherwise."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("timezone", f"unknown time zone {zone!r}") from None
    try:
        naive = datetime.fromisoformat(f"{day}T{clock}")
    except ValueError:
        raise invalid("send_date", "give a date (YYYY-MM-DD) and a time (HH:MM)") from None
    local = naive.replace(tzinfo=tz)
    # A wall-clock time skipped by a DST change does not survive the round trip through UTC.
    back = local.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    if back != naive:
        raise invalid(
            "send_time", f"{clock} on {day} does not exist in {zone} (the clocks go forward)"
        )
    at = local.astimezone(UTC)
    if at <= (now or utcnow()):
        raise invalid("send_time", f"{day} {clock} {zone} is in the past")
    return at
