"""The public archive's reads: which issues it shows, and their web versions, cached.

Only sent issues with `in_archive` true are ever shown; a withdrawn one answers as if it
had never existed. The web version is compiled with `web=True`: no one's personal links.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.issues import compose, rendering
from app.issues.templating import is_template
from app.models import Issue

PAGE_SIZE = 50
# The archive is public and an issue is compiled once (MJML, CSS inlining) per cache
# entry, so a crawler walking the archive costs one compile per issue, not per request.
_CACHE_SIZE = 64
_cache: OrderedDict[tuple[str, int, str], str] = OrderedDict()
_subjects: OrderedDict[tuple[str, int, str], str] = OrderedDict()
_BODY_TAG = re.compile(r"<body\b[^>]*>", re.I)
# Whatever the layout says, every archived page leads back to the index and to sign-up.
_NAV = (
    '<nav aria-label="Archive" style="max-width:600px;margin:0 auto;padding:12px 20px;'
    'font:14px Helvetica,Arial,sans-serif"><a href="/archive">&larr; All past issues</a>'
    ' &middot; <a href="/subscribe">Subscribe</a></nav>'
)


def _shown() -> Any:
    return (Issue.status == "sent") & Issue.in_archive.is_(True)


async def index(
    *, session: AsyncSession, settings: Settings, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of archived issues, newest first, and the id to show older ones before."""
    query = select(Issue).where(_shown()).order_by(Issue.id.desc())
    if before is not None:
        query = query.where(Issue.id < before)
    rows = list((await session.scalars(query.limit(PAGE_SIZE + 1))).all())
    issues = [
        {"id": i.id, "subject": await _subject(settings, i), "date": _date(i)}
        for i in rows[:PAGE_SIZE]
    ]
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return issues, older


def _date(issue: Issue) -> datetime | None:
    return issue.started_at or issue.finished_at


async def web_version(*, session: AsyncSession, settings: Settings, issue_id: int) -> str | None:
    """The public HTML of one archived issue; None when it is not (or no longer) shown."""
    issue = await session.scalar(select(Issue).where(Issue.id == issue_id, _shown()))
    if issue is None:
        return None
    key = _key(settings, issue)
    html = _cache.get(key)
    if html is None:
        try:
            html = await asyncio.to_thread(_render, settings, issue)
        except (rendering.BodyError, rendering.HeaderError):
            return None  # its template was removed after the send: nothing to show
        _cache[key] = html
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return html


def _key(settings: Settings, issue: Issue) -> tuple[str, int, str]:
    # updated_at moves on every change, in_archive included, so a stale page never lingers.
    return (settings.public_url, issue.id, issue.updated_at.isoformat())


def _render(settings: Settings, issue: Issue) -> str:
    html = compose.compile_for_send(settings, issue, web=True).render_archive_html()
    return _BODY_TAG.sub(lambda m: m[0] + _NAV, html, count=1)


async def _subject(settings: Settings, issue: Issue) -> str:
    """The subject as the archive shows it: a personalised one rendered for no one in particular."""
    if not is_template(issue.subject):
        return issue.subject
    key = _key(settings, issue)
    subject = _subjects.get(key)
    if subject is None:
        try:
            compiled = await asyncio.to_thread(compose.compile_for_send, settings, issue, web=True)
            subject = compiled.render_archive_subject()
        except (rendering.BodyError, rendering.HeaderError):
            subject = ""
        _subjects[key] = subject
        if len(_subjects) > _CACHE_SIZE * 8:
            _subjects.popitem(last=False)
    return subject
