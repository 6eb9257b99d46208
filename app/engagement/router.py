"""The engagement API: per-link table, timeline, one subscriber's events, CSV export, follow-up."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from app.deps import AdminDep, SessionDep, SettingsDep
from app.engagement import followup, reports
from app.issues import service as issues
from app.pagination import BigRowId, RowId

IssueId = RowId
SubscriberId = BigRowId

router = APIRouter(prefix="/api/v1", tags=["engagement"], dependencies=[AdminDep])


@router.get("/issues/{issue_id}/links")
async def links(issue_id: IssueId, session: SessionDep) -> dict[str, Any]:
    """Each tracked link of the issue: clicks, unique clicks and machine clicks."""
    await issues.get(session=session, issue_id=issue_id)
    return {"items": await reports.links(session, issue_id)}


@router.get("/issues/{issue_id}/timeline")
async def timeline(
    issue_id: IssueId, session: SessionDep, bucket: Literal["hour", "day"] = Query("hour")
) -> dict[str, Any]:
    """Sent, opens, clicks, bounces, unsubscribes and complaints per hour or day."""
    await issues.get(session=session, issue_id=issue_id)
    return {"items": await reports.timeline(session, issue_id, bucket)}


@router.get("/issues/{issue_id}/engagement")
async def engagement(issue_id: IssueId, session: SessionDep) -> dict[str, Any]:
    """Opens and clicks of people and machines, with why machines were judged so."""
    await issues.get(session=session, issue_id=issue_id)
    return await reports.totals(session, issue_id)


@router.get("/issues/{issue_id}/engagement.csv")
async def engagement_csv(issue_id: IssueId, session: SessionDep) -> Response:
    """The issue's engagement as CSV: totals, then one row per link."""
    await issues.get(session=session, issue_id=issue_id)
    totals = await reports.totals(session, issue_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["url", "clicks", "unique_clicks", "machine_clicks"])
    writer.writerow(["(all links)", totals["clicks"], totals["unique_clicks"],
                     totals["machine_clicks"]])  # fmt: skip
    for item in await reports.links(session, issue_id):
        # A URL starting with = + - @ would be a formula in a spreadsheet.
        url = "'" + item["url"] if item["url"][:1] in "=+-@" else item["url"]
        writer.writerow([url, item["clicks"], item["unique_clicks"], item["machine_clicks"]])
    writer.writerow([])
    writer.writerow(["opens", "unique_opens", "machine_opens"])
    writer.writerow([totals["opens"], totals["unique_opens"], totals["machine_opens"]])
    name = f"issue-{issue_id}-engagement.csv"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)


@router.post("/issues/{issue_id}/follow-up", status_code=201)
async def follow_up(
    issue_id: IssueId, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """A new draft of the issue for those who did not open it (people's opens only)."""
    draft = await followup.create(session=session, settings=settings, issue_id=issue_id)
    return {"id": draft.id, "status": draft.status, "segment": draft.segment_id}


@router.get("/subscribers/{subscriber_id}/events")
async def subscriber_events(
    subscriber_id: SubscriberId, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """What one subscriber opened and clicked, and when (`individual` mode only)."""
    return {"items": await reports.subscriber_events(session, settings, subscriber_id)}
