"""The public archive: web versions of sent issues, with no one's personal data."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from app.config import Settings
from app.deps import SessionDep, SettingsDep
from app.issues import compose, rendering
from app.issues.templating import is_template
from app.models import Issue
from app.web.pages import not_found_page, render_page

router = APIRouter(tags=["archive"])

PAGE_SIZE = 50
# The archive is public and an issue is compiled once (MJML, CSS inlining) per cache
# entry, so a crawler walking the archive costs one compile per issue, not per request.
_CACHE_SIZE = 64
_cache: OrderedDict[tuple[str, int, str], str] = OrderedDict()
_subjects: OrderedDict[tuple[str, int, str], str] = OrderedDict()
# The email's own HTML: images may come from anywhere, nothing may run or be framed.
ISSUE_HEADERS = {
    "Content-Security-Policy": (
        "script-src 'none'; object-src 'none'; form-action 'none'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "public, max-age=300",
}


@router.get("/archive", response_class=HTMLResponse)
async def archive(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    before: int | None = Query(None, ge=1, le=2**31 - 1),
) -> HTMLResponse:
    """The list of sent issues, newest first."""
    query = select(Issue).where(Issue.status == "sent").order_by(Issue.id.desc())
    if before is not None:
        query = query.where(Issue.id < before)
    rows = list((await session.scalars(query.limit(PAGE_SIZE + 1))).all())
    issues = [
        {
            "id": i.id,
            "subject": await _archive_subject(settings, i),
            "date": i.started_at or i.finished_at,
        }
        for i in rows[:PAGE_SIZE]
    ]
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return render_page(request, "archive.html", {"issues": issues, "older": older})


@router.get("/archive/{issue_id}", response_class=HTMLResponse)
async def archive_issue(
    issue_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """The web version of one sent issue; 404 for anything not sent."""
    issue = await session.get(Issue, issue_id)
    if issue is None or issue.status != "sent":
        return not_found_page(request)
    try:
        html = await _archive_html(settings, issue)
    except (rendering.BodyError, rendering.HeaderError):
        # Its template was removed after the send: nothing to show rather than a 500.
        return not_found_page(request)
    return HTMLResponse(html, headers=ISSUE_HEADERS)


async def _archive_html(settings: Settings, issue: Issue) -> str:
    key = (settings.public_url, issue.id, issue.updated_at.isoformat())
    html = _cache.get(key)
    if html is None:
        html = await asyncio.to_thread(_render, settings, issue)
        _cache[key] = html
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return html


async def _archive_subject(settings: Settings, issue: Issue) -> str:
    """The subject as the archive shows it: a personalised one rendered for no one in particular."""
    if not is_template(issue.subject):
        return issue.subject
    key = (settings.public_url, issue.id, issue.updated_at.isoformat())
    subject = _subjects.get(key)
    if subject is None:
        try:
            compiled = await asyncio.to_thread(compose.compile_for_send, settings, issue)
            subject = compiled.render_archive_subject()
        except (rendering.BodyError, rendering.HeaderError):
            subject = ""
        _subjects[key] = subject
        if len(_subjects) > _CACHE_SIZE * 8:
            _subjects.popitem(last=False)
    return subject


def _render(settings: Settings, issue: Issue) -> str:
    return compose.compile_for_send(settings, issue).render_archive_html()
