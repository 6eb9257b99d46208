"""API additions the console needed first: a person's history, and the table as CSV."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app.deps import AdminDep, SessionDep
from app.pagination import BigRowId
from app.subscribers.export import check_filters, export_filename, subscribers_csv
from app.subscribers.history import history

router = APIRouter(prefix="/api/v1", dependencies=[AdminDep], tags=["subscribers"])

SubscriberId = BigRowId
Search = Annotated[
    str | None,
    Query(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$", description="in email or name"),
]
ListSlug = Annotated[
    str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="a list's slug")
]
Status = Annotated[
    Literal["active", "blocklisted", "pending", "confirmed", "unsubscribed"] | None,
    Query(description="the membership's with `list`, else the person's"),
]


@router.get("/subscribers/{subscriber_id}/history")
async def subscriber_history(subscriber_id: SubscriberId, session: SessionDep) -> dict[str, Any]:
    """What this person was sent and what came back: the latest deliveries and bounces."""
    return await history(session=session, subscriber_id=subscriber_id)


@router.get(
    "/exports/subscribers.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_subscribers(
    request: Request,
    session: SessionDep,
    q: Search = None,
    list: ListSlug = None,  # noqa: A002
    status: Status = None,
) -> StreamingResponse:
    """The subscribers matching the same filters as `GET /subscribers`, as CSV, streamed."""
    await check_filters(session=session, list_slug=list, status=status, q=q)
    return csv_response(request, list_slug=list, status=status, q=q)


def csv_response(
    request: Request, *, list_slug: str | None, status: str | None, q: str | None
) -> StreamingResponse:
    """The streamed CSV download, shared with the console's export link."""
    body = subscribers_csv(
        sessionmaker=request.app.state.sessionmaker, list_slug=list_slug, status=status, q=q
    )
    name = export_filename(list_slug)
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
