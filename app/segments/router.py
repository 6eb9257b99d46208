"""The segments API: `/api/v1/segments`, their counts, and counting a rule before saving it."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import AdminDep, SessionDep
from app.pagination import Cursor, Limit, RowId, decode_cursor, encode_cursor
from app.segments import service
from app.segments.models import Segment
from app.segments.schemas import CountOut, RulesIn, SegmentIn, SegmentOut, SegmentPage, SegmentPatch

router = APIRouter(prefix="/api/v1/segments", tags=["segments"], dependencies=[AdminDep])
SegmentId = RowId


def segment_out(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        rules=segment.rules,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
    )


@router.post("", status_code=201, response_model=SegmentOut)
async def create_segment(data: SegmentIn, session: SessionDep) -> SegmentOut:
    """Save a rule under a name; 422 naming where when it is outside the grammar."""
    return segment_out(await service.create(session=session, data=data))


@router.get("", response_model=SegmentPage)
async def list_segments(
    session: SessionDep, limit: Limit = 100, cursor: Cursor = None
) -> SegmentPage:
    """The saved segments, oldest first."""
    items = await service.list_segments(
        session=session, limit=limit, after_id=decode_cursor(cursor)
    )
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return SegmentPage(items=[segment_out(s) for s in items], next_cursor=next_cursor)


@router.post("/count", response_model=CountOut)
async def count_rule(data: RulesIn, session: SessionDep) -> CountOut:
    """How many subscribers a rule matches, before it is saved."""
    return CountOut(count=await service.count_rule(session=session, rule=data.rules))


@router.get("/{segment_id}", response_model=SegmentOut)
async def get_segment(segment_id: SegmentId, session: SessionDep) -> SegmentOut:
    """One segment."""
    return segment_out(await service.get(session=session, segment_id=segment_id))


@router.get("/{segment_id}/count", response_model=CountOut)
async def count_segment(segment_id: SegmentId, session: SessionDep) -> CountOut:
    """How many subscribers the segment matches now."""
    return CountOut(count=await service.count(session=session, segment_id=segment_id))


@router.patch("/{segment_id}", response_model=SegmentOut)
async def patch_segment(
    segment_id: SegmentId, data: SegmentPatch, session: SessionDep
) -> SegmentOut:
    """Rename a segment or change its rule."""
    segment = await service.update(session=session, segment_id=segment_id, data=data)
    return segment_out(segment)


@router.delete("/{segment_id}", status_code=204)
async def delete_segment(segment_id: SegmentId, session: SessionDep) -> Response:
    """Delete a segment; 409 naming the unfinished issues that use it."""
    await service.delete(session=session, segment_id=segment_id)
    return Response(status_code=204)
