"""Console pages of sending: the confirmation, scheduling, live progress, pause/resume/cancel,
and the report with its per-recipient log (filters, CSV) and the archive choice.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator
from email.utils import parseaddr
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.config import Settings
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep, SettingsDep
from app.engagement import console as engagement_console
from app.engagement import followup
from app.errors import Conflict, Invalid
from app.issues import drafts, progress, service
from app.issues.lifecycle import EDITABLE
from app.issues.schemas import IssuePatch
from app.models import Issue
from app.segments import service as segments

router = APIRouter(prefix="/admin", tags=["console"])
IssueId = Annotated[int, Path(ge=1, le=2**31 - 1)]
STATUSES = ("queued", "sending", "sent", "failed", "bounced", "complained")
PAGE = 200


def setup_warnings(settings: Settings, issue: Issue) -> list[str]:
    """What is not set up for a good send: DKIM, bounce processing, From alignment."""
    found = []
    if not (settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file):
        found.append("DKIM is not configured: many providers will file this in spam.")
    if not (settings.bounce_domain or settings.webhook_secret):
        found.append("Bounce processing is not configured: bad addresses will not be removed.")
    domain = parseaddr(issue.from_addr or settings.from_)[1].rpartition("@")[2].lower()
    if settings.dkim_domain and domain and domain != settings.dkim_domain.lower():
        found.append(f"The From domain {domain} is not the DKIM domain {settings.dkim_domain}:"
                     " DMARC will not align.")  # fmt: skip
    return found


async def _confirmation(request: Request, session: Any, settings: Settings, issue: Issue,
                        **more: Any) -> Response:  # fmt: skip
    """The confirmation page: the lists, the segment, and how many both leave now."""
    recipients = await service.count_recipients(session=session, issue_id=issue.id)
    segment = None
    if issue.segment_id is not None:
        segment = await segments.get(session=session, segment_id=issue.segment_id)
    can_send = more.pop("can_send", True) and recipients > 0
    context = {"problems": [], "errors": {}, "values": {}} | more
    return page(request, "console/issue_send.html", issue=issue, recipients=recipients,
                segment=segment, warnings=setup_warnings(settings, issue), can_send=can_send,
                **context)  # fmt: skip


@router.get("/issues/{issue_id}/send")
async def confirm_send(issue_id: IssueId, request: Request, session: SessionDep,
                       settings: SettingsDep, user: ConsoleUser) -> Response:  # fmt: skip
    """The confirmation: lists, recipients, what is not set up; refused with no recipients."""
    issue = await service.get(session=session, issue_id=issue_id)
    if issue.status not in EDITABLE:
        return redirect(f"/admin/issues/{issue_id}/report")
    problems = drafts.problems(settings, {k: getattr(issue, k) for k in service.CONTENT})
    return await _confirmation(
        request,
        session,
        settings,
        issue,
        problems=problems,
        can_send=user.role != "viewer" and not problems,
    )


@router.post("/issues/{issue_id}/send")
async def send(issue_id: IssueId, request: Request, session: SessionDep, settings: SettingsDep,
               user: ConsoleUser) -> Response:  # fmt: skip
    """Start sending now; a second click finds it sending and just shows the progress."""
    require_role(user, "editor")
    if await service.count_recipients(session=session, issue_id=issue_id) == 0:
        flash(request, "Nobody would receive this issue: nothing was sent.", "error")
        return redirect(f"/admin/issues/{issue_id}/send")
    try:
        _, count = await service.start_send(session=session, settings=settings,
                                            issue_id=issue_id, send_at=None)  # fmt: skip
    except Conflict:
        flash(request, "This issue is already on its way; nothing was sent twice.", "info")
        return redirect(f"/admin/issues/{issue_id}/report")
    flash(request, f"Sending to {count} recipients.", "success")
    return redirect(f"/admin/issues/{issue_id}/report")


@router.post("/issues/{issue_id}/schedule")
async def schedule(issue_id: IssueId, request: Request, session: SessionDep,
                   settings: SettingsDep, user: ConsoleUser) -> Response:  # fmt: skip
    """Schedule at a date and time in the person's time zone (never the past or a skipped hour)."""
    require_role(user, "editor")
    form = await request.form()
    values = {k: str(form.get(k, "")) for k in ("send_date", "send_time", "timezone")}
    try:
        at = drafts.local_send_time(values["send_date"], values["send_time"],
                                    values["timezone"] or "UTC")  # fmt: skip
        await service.start_send(session=session, settings=settings, issue_id=issue_id,
                                 send_at=at)  # fmt: skip
    except (Invalid, Conflict) as exc:
        issue = await service.get(session=session, issue_id=issue_id)
        return await _confirmation(
            request,
            session,
            settings,
            issue,
            values=values,
            errors={"schedule": exc.detail},
            status_code=exc.status_code,
        )
    flash(request, f"Scheduled for {at:%Y-%m-%d %H:%M} UTC.", "success")
    return redirect(f"/admin/issues/{issue_id}/report")


@router.get("/issues/{issue_id}/progress.json")
async def progress_json(issue_id: IssueId, request: Request, user: ConsoleUser) -> Response:
    """progress.js: sent, failed, bounced, rate, ETA; at most one shared query a second per
    issue, fewer for a list whose count is costly (app/issues/progress.py)."""
    board = progress.board(request.app.state)
    return JSONResponse(await board.read(request.app.state.sessionmaker, issue_id))


@router.get("/issues/{issue_id}/progress")
async def progress_stream(issue_id: IssueId, request: Request, user: ConsoleUser) -> Response:
    """progress.js's live figures as server-sent events: the session is checked once, then
    each viewer gets the shared snapshot once a second for the price of writing it (no
    request, no session lookup per second). The stream ends when the send does, the viewer
    leaves, or after STREAM_SECONDS (EventSource reconnects), so no server waits on it."""
    board = progress.board(request.app.state)
    maker = request.app.state.sessionmaker
    first = await board.read(maker, issue_id)  # an unknown issue: 404 before the stream

    async def events() -> AsyncIterator[bytes]:
        snapshot, deadline = first, time.monotonic() + progress.STREAM_SECONDS
        while True:
            yield b"retry: 2000\ndata: " + json.dumps(snapshot).encode() + b"\n\n"
            if snapshot["status"] not in progress.LIVE or time.monotonic() > deadline:
                return
            await asyncio.sleep(progress.TICK)
            if await request.is_disconnected():
                return
            snapshot = await board.read(maker, issue_id)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.post("/issues/{issue_id}/{action}")
async def move(issue_id: IssueId, action: str, request: Request, session: SessionDep,
               user: ConsoleUser) -> Response:  # fmt: skip
    """Pause, resume or cancel; a move that makes no sense now is explained, nothing changes."""
    if action not in ("pause", "resume", "cancel", "archive", "follow-up"):
        return Response("not found", status_code=404)
    require_role(user, "editor")
    if action == "archive":
        return await _archive(issue_id, request, session)
    if action == "follow-up":  # app/engagement/followup.py: a draft for the non-openers
        try:
            draft = await followup.create(session=session, settings=request.app.state.settings,
                                          issue_id=issue_id)  # fmt: skip
        except Conflict as exc:
            flash(request, exc.detail, "error")
            return redirect(f"/admin/issues/{issue_id}/report")
        flash(request, "A follow-up draft for those who did not open.", "success")
        return redirect(f"/admin/issues/{draft.id}")
    try:
        await service.move(session=session, issue_id=issue_id, action=action)
    except Conflict as exc:
        flash(request, exc.detail, "error")
    else:
        flash(request, {"pause": "Paused.", "resume": "Resumed.", "cancel": "Cancelled."}[action],
              "success")  # fmt: skip
    progress.board(request.app.state).forget(issue_id)
    return redirect(f"/admin/issues/{issue_id}/report")


async def _archive(issue_id: int, request: Request, session: Any) -> Response:
    form = await request.form()
    wanted = form.get("in_archive") == "on"
    await service.update_issue(session=session, settings=request.app.state.settings,
                               issue_id=issue_id, data=IssuePatch(in_archive=wanted))  # fmt: skip
    flash(request, "In the public archive." if wanted else "Withdrawn from the archive.", "success")
    return redirect(f"/admin/issues/{issue_id}/report")


def _filters(request: Request) -> tuple[str | None, str, int]:
    status = request.query_params.get("status") or None
    cursor = request.query_params.get("after", "")
    q = request.query_params.get("q", "").strip()[:200]
    return (status if status in STATUSES else None), q, int(cursor) if cursor.isdigit() else 0


@router.get("/issues/{issue_id}/report")
async def report(issue_id: IssueId, request: Request, session: SessionDep,
                 settings: SettingsDep, user: ConsoleUser) -> Response:  # fmt: skip
    """Progress while sending, the stats after, and the per-recipient log with filters."""
    issue = await service.get(session=session, issue_id=issue_id)
    stats = await progress.board(request.app.state).read(request.app.state.sessionmaker, issue_id)
    status, q, after = _filters(request)
    rows, last = await service.deliveries(session=session, issue_id=issue_id, status=status,
                                          limit=PAGE, after=after)  # fmt: skip
    if q:
        rows = [r for r in rows if q.lower() in (r["email"] or "").lower()]
    engagement = await engagement_console.report(session, settings, issue)
    return page(request, "console/issue_report.html", issue=issue, stats=stats, rows=rows,
                next_after=last, status=status or "", q=q, statuses=STATUSES,
                can_edit=user.role != "viewer", engagement=engagement)  # fmt: skip


@router.get("/issues/{issue_id}/deliveries.csv")
async def deliveries_csv(issue_id: IssueId, request: Request, session: SessionDep,
                         user: ConsoleUser) -> Response:  # fmt: skip
    """The per-recipient log as CSV, streamed a page at a time."""
    await service.get(session=session, issue_id=issue_id)
    status, _, _ = _filters(request)
    maker = request.app.state.sessionmaker

    async def lines() -> AsyncIterator[str]:
        columns = ["email", "status", "attempts", "last_error", "message_id", "sent_at"]
        yield _csv_line(columns)
        after: int | None = 0
        while after is not None:
            async with maker() as s:
                rows, after = await service.deliveries(
                    session=s, issue_id=issue_id, status=status, limit=1000, after=after
                )
            for r in rows:
                yield _csv_line([_cell(r[c]) for c in columns])

    headers = {"Content-Disposition": f'attachment; filename="issue-{issue_id}-log.csv"'}
    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell a spreadsheet would run as a formula is quoted as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()
