"""The issues (editions) API: authoring, preview, test sends, send control, stats, log."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from app.config import Settings
from app.deps import AdminDep, MailerDep, SessionDep, SettingsDep
from app.issues import compose, service, testsend, triggers
from app.issues.schemas import (
    DeliveryPage,
    DeliveryStatus,
    IssueIn,
    IssueOut,
    IssuePage,
    IssuePatch,
    IssueStatus,
    SendIn,
    SendOut,
    StatsOut,
    TestIn,
    TestOut,
)
from app.models import Issue
from app.pagination import Cursor, Limit, RowId, decode_cursor, encode_cursor

# Issue ids are int4 in the database: a larger one is a 422, not a driver error.
IssueId = RowId

router = APIRouter(prefix="/api/v1/issues", tags=["issues"], dependencies=[AdminDep])

# Previews show an author's own HTML in the admin's browser: never let it run script.
PREVIEW_HEADERS = {"Content-Security-Policy": "script-src 'none'; form-action 'none'"}


def issue_out(settings: Settings, issue: Issue, trigger: dict[str, Any] | None = None) -> IssueOut:
    return IssueOut(
        id=issue.id,
        subject=issue.subject,
        preheader=issue.preheader,
        from_=issue.from_addr or settings.from_,
        lists=[lst.slug for lst in issue.lists],
        template=issue.template,
        format=issue.format,
        body=issue.body,
        status=issue.status,  # type: ignore[arg-type]
        status_reason=issue.status_reason,
        send_at=issue.send_at,
        created_at=issue.created_at,
        updated_at=issue.updated_at,
        started_at=issue.started_at,
        finished_at=issue.finished_at,
        recipients=issue.recipients,
        in_archive=issue.in_archive,
        segment=issue.segment_id,
        track_opens=issue.track_opens,
        track_clicks=issue.track_clicks,
        trigger=trigger,
        smtp_route=issue.smtp_route,
    )


async def _shown(session: SessionDep, settings: Settings, issue: Issue) -> IssueOut:
    """One issue with its trigger (a page of issues leaves the trigger out)."""
    return issue_out(settings, issue, await triggers.rule(session, issue.id))


@router.post("", status_code=201, response_model=IssueOut)
async def create_issue(data: IssueIn, session: SessionDep, settings: SettingsDep) -> IssueOut:
    """Create a draft issue."""
    issue = await service.create(session=session, settings=settings, data=data)
    return await _shown(session, settings, issue)


@router.get("", response_model=IssuePage)
async def list_issues(
    session: SessionDep,
    settings: SettingsDep,
    status: IssueStatus | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> IssuePage:
    """Issues, oldest first, optionally of one status."""
    issues, last = await service.list_issues(
        session=session, status=status, limit=limit, after=decode_cursor(cursor) or 0
    )
    return IssuePage(
        items=[issue_out(settings, i) for i in issues],
        next_cursor=encode_cursor(last) if last is not None else None,
    )


@router.get("/{issue_id}", response_model=IssueOut)
async def get_issue(issue_id: IssueId, session: SessionDep, settings: SettingsDep) -> IssueOut:
    """One issue."""
    return await _shown(session, settings, await service.get(session=session, issue_id=issue_id))


@router.patch("/{issue_id}", response_model=IssueOut)
async def patch_issue(
    issue_id: IssueId, data: IssuePatch, session: SessionDep, settings: SettingsDep
) -> IssueOut:
    """Change a draft, scheduled or inactive issue (409 once it has started, or while active)."""
    issue = await service.update_issue(
        session=session, settings=settings, issue_id=issue_id, data=data
    )
    return await _shown(session, settings, issue)


@router.delete("/{issue_id}", status_code=204)
async def delete_issue(issue_id: IssueId, session: SessionDep) -> Response:
    """Delete a draft or scheduled issue (409 once it has started)."""
    await service.delete_issue(session=session, issue_id=issue_id)
    return Response(status_code=204)


@router.post("/{issue_id}/duplicate", status_code=201, response_model=IssueOut)
async def duplicate_issue(
    issue_id: IssueId, session: SessionDep, settings: SettingsDep
) -> IssueOut:
    """A new draft with the same content, lists, archive choice and trigger."""
    copy = await service.duplicate(session=session, issue_id=issue_id)
    return await _shown(session, settings, copy)


@router.get("/{issue_id}/preview", response_class=Response)
async def preview(
    issue_id: IssueId,
    session: SessionDep,
    settings: SettingsDep,
    format: Literal["html", "text", "eml"] = "html",
    subscriber_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    sample: testsend.Sample = "named",
) -> Response:
    """What one subscriber (or a sample one, `sample=nameless` for one with no name) gets."""
    issue = await service.get(session=session, issue_id=issue_id)
    r = await testsend.preview_recipient(
        session=session, settings=settings, issue_id=issue_id, subscriber_id=subscriber_id,
        sample=sample,
    )  # fmt: skip
    compiled = await service.compiled(settings, issue)
    if format == "html":
        html = await asyncio.to_thread(compiled.render_html, r)
        return HTMLResponse(html, headers=PREVIEW_HEADERS)
    if format == "text":
        return PlainTextResponse(await asyncio.to_thread(compiled.render_text, r))
    data = await compose.dkim_sign(settings, await asyncio.to_thread(compiled.render_message, r))
    disposition = f'inline; filename="issue-{issue_id}.eml"'
    return Response(data, media_type="message/rfc822", headers={"Content-Disposition": disposition})


@router.post("/{issue_id}/test", status_code=202, response_model=TestOut)
async def test_send(
    issue_id: IssueId, data: TestIn, session: SessionDep, settings: SettingsDep, mailer: MailerDep
) -> TestOut:
    """Send the issue at once to a few addresses; no delivery is recorded."""
    sent = await testsend.send_test(
        session=session, settings=settings, mailer=mailer, issue_id=issue_id,
        emails=[str(e) for e in data.emails],
    )  # fmt: skip
    return TestOut(status="sent", sent=sent)


@router.post("/{issue_id}/send", status_code=202, response_model=SendOut)
async def send(
    issue_id: IssueId, session: SessionDep, settings: SettingsDep, data: SendIn | None = None
) -> SendOut:
    """Send now, or at send_at (ISO 8601 with an offset); 409 unless draft or scheduled."""
    status, recipients = await service.start_send(
        session=session,
        settings=settings,
        issue_id=issue_id,
        send_at=data.send_at if data else None,
    )
    return SendOut(status=status, recipients=recipients)  # type: ignore[arg-type]


async def _move(
    session: SessionDep, settings: Settings, issue_id: IssueId, action: str
) -> IssueOut:
    issue = await service.move(session=session, issue_id=issue_id, action=action)
    return issue_out(settings, issue)


@router.post("/{issue_id}/activate", response_model=IssueOut)
async def activate(issue_id: IssueId, session: SessionDep, settings: SettingsDep) -> IssueOut:
    """Start a triggered issue: each member who confirms its list from now on receives it."""
    issue = await service.set_active(session=session, settings=settings, issue_id=issue_id,
                                     active=True)  # fmt: skip
    return await _shown(session, settings, issue)


@router.post("/{issue_id}/deactivate", response_model=IssueOut)
async def deactivate(issue_id: IssueId, session: SessionDep, settings: SettingsDep) -> IssueOut:
    """Stop enrolling new confirmations in a triggered issue."""
    issue = await service.set_active(session=session, settings=settings, issue_id=issue_id,
                                     active=False)  # fmt: skip
    return await _shown(session, settings, issue)


@router.post("/{issue_id}/pause", response_model=IssueOut)
async def pause(issue_id: IssueId, session: SessionDep, settings: SettingsDep) -> IssueOut:
    """Pause a sending issue; what was sent stays sent."""
    return await _move(session, settings, issue_id, "pause")


@router.post("/{issue_id}/resume", response_model=IssueOut)
async def resume(issue_id: IssueId, session: SessionDep, settings: SettingsDep) -> IssueOut:
    """Resume a paused issue where it stopped (a scheduled one stays scheduled)."""
    return await _move(session, settings, issue_id, "resume")


@router.post("/{issue_id}/cancel", response_model=IssueOut)
async def cancel(issue_id: IssueId, session: SessionDep, settings: SettingsDep) -> IssueOut:
    """Cancel an issue that has not finished; its queued deliveries are dropped."""
    return await _move(session, settings, issue_id, "cancel")


@router.get("/{issue_id}/stats", response_model=StatsOut)
async def stats(issue_id: IssueId, session: SessionDep) -> StatsOut:
    """Counts of the issue's deliveries by outcome, and the send rate."""
    return StatsOut(**await service.stats(session=session, issue_id=issue_id))


@router.get("/{issue_id}/deliveries", response_model=DeliveryPage)
async def deliveries(
    issue_id: IssueId,
    session: SessionDep,
    status: DeliveryStatus | None = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> DeliveryPage:
    """The per-recipient delivery log."""
    items, last = await service.deliveries(
        session=session,
        issue_id=issue_id,
        status=status,
        limit=limit,
        after=decode_cursor(cursor) or 0,
    )
    return DeliveryPage(
        items=items,  # type: ignore[arg-type]
        next_cursor=encode_cursor(last) if last is not None else None,
    )
