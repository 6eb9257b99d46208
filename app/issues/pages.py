"""Public pages of issues: the archive, and where a test message's links lead."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from app.deps import SessionDep, SettingsDep
from app.issues import archive as service
from app.pagination import RowId
from app.web.pages import not_found_page, render_page

router = APIRouter(tags=["archive"])

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
    """The list of archived issues, newest first."""
    issues, older = await service.index(session=session, settings=settings, before=before)
    return render_page(request, "archive.html", {"issues": issues, "older": older})


@router.get("/archive/{issue_id}", response_class=HTMLResponse)
async def archive_issue(
    issue_id: RowId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> HTMLResponse:
    """The web version of one archived issue; 404 for anything not sent or not archived."""
    html = await service.web_version(session=session, settings=settings, issue_id=issue_id)
    if html is None:
        return not_found_page(request)
    return HTMLResponse(html, headers=ISSUE_HEADERS)


@router.api_route(
    "/test-message/{link}", methods=["GET", "POST"], response_class=HTMLResponse,
    include_in_schema=False,
)  # fmt: skip
async def test_message_link(
    link: Annotated[str, Path(pattern="^(unsubscribe|preferences)$")], request: Request
) -> HTMLResponse:
    """Where the unsubscribe and preference links of a test message or preview lead."""
    # POST too: a mail client's one-click unsubscribe (RFC 8058) of a test message.
    return render_page(request, "test_message.html", {"link": link})
