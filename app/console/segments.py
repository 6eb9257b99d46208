"""Console pages of segments: the saved segments with their counts, the builder, delete.

The builder is a plain form (name and the rule as JSON) that works without JavaScript:
its Count button posts the form and the page comes back with the count. segments.js
adds a structured editor over the same textarea and counts as the rule changes, through
the same POST /admin/segments/count answered as JSON.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep
from app.errors import DomainError, Invalid
from app.segments import service
from app.segments.schemas import SegmentIn, SegmentPatch

router = APIRouter(prefix="/admin", tags=["console"])
MAX_SHOWN = 200
EXAMPLE = {"all": [{"list": "news", "status": "confirmed"}]}


def _where(exc: DomainError) -> str:
    """Where in the rule a refusal points, as a person reads it: rules › all › 2 › op."""
    loc = getattr(exc, "path", exc.loc)
    return " › ".join(str(p) for p in loc if p != "body")


async def _form(request: Request) -> tuple[str, str]:
    form = await request.form()
    return str(form.get("name", "")).strip(), str(form.get("rules", ""))


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise Invalid(f"the rule is not JSON: {exc}", loc=("rules",)) from None


async def _editor(
    request: Request, user: Any, *, segment_id: int | None, name: str, rules: str,
    count: int | None = None, error: str | None = None, status_code: int = 200,
) -> Response:  # fmt: skip
    return page(
        request, "console/segment_edit.html", segment_id=segment_id, seg_name=name, rules=rules,
        count=count, error=error, can_edit=user.role in ("owner", "editor"),
        status_code=status_code,
    )  # fmt: skip


async def _refused(
    request: Request, user: Any, segment_id: int | None, name: str, text: str, exc: Exception
) -> Response:
    """The builder again, as filled in, saying why it was refused."""
    if isinstance(exc, ValidationError):
        error, status = "name: a segment needs a name (up to 200 characters)", 422
    else:
        assert isinstance(exc, DomainError)
        error, status = f"{_where(exc)}: {exc.detail}", exc.status_code
    return await _editor(request, user, segment_id=segment_id, name=name, rules=text,
                         error=error, status_code=status)  # fmt: skip


@router.get("/segments")
async def segments_page(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Every saved segment with how many people it matches now."""
    segments = await service.list_segments(session=session, limit=MAX_SHOWN, after_id=None)
    counts = {s.id: await service.count_rule(session=session, rule=s.rules) for s in segments}
    return page(
        request, "console/segment_index.html", segments=segments, counts=counts,
        can_edit=user.role in ("owner", "editor"),
    )  # fmt: skip


@router.get("/segments/new")
async def new_segment(request: Request, user: ConsoleUser) -> Response:
    """The builder, with a first condition to change."""
    return await _editor(
        request, user, segment_id=None, name="", rules=json.dumps(EXAMPLE, indent=2)
    )


@router.post("/segments/count")
async def count_rule(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Count the rule being built: JSON for the builder's script, the page again without it."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            rule = (await request.json()).get("rules")
            return JSONResponse({"count": await service.count_rule(session=session, rule=rule)})
        except (ValueError, AttributeError):
            return JSONResponse({"detail": [{"loc": ["body"], "msg": "not JSON"}]}, 422)
        except DomainError as exc:
            return JSONResponse({"detail": exc.body()}, status_code=exc.status_code)
    form = await request.form()
    name, text = str(form.get("name", "")), str(form.get("rules", ""))
    raw_id = str(form.get("segment_id", ""))
    segment_id = int(raw_id) if raw_id.isdigit() else None
    try:
        count = await service.count_rule(session=session, rule=_parse(text))
    except DomainError as exc:
        return await _refused(request, user, segment_id, name, text, exc)
    return await _editor(request, user, segment_id=segment_id, name=name, rules=text, count=count)


@router.post("/segments")
async def create_segment(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """Save the builder's rule as a new segment."""
    require_role(user, "editor")
    name, text = await _form(request)
    try:
        data = SegmentIn(name=name, rules=_parse(text))
        segment = await service.create(session=session, data=data)
    except (ValidationError, DomainError) as exc:
        return await _refused(request, user, None, name, text, exc)
    flash(request, f"Segment {segment.name!r} saved.", "success")
    return redirect(f"/admin/segments/{segment.id}")


@router.get("/segments/{segment_id}")
async def segment_page(
    request: Request, segment_id: int, session: SessionDep, user: ConsoleUser
) -> Response:
    """One segment in the builder, with its count."""
    segment = await service.get(session=session, segment_id=segment_id)
    count = await service.count_rule(session=session, rule=segment.rules)
    return await _editor(
        request, user, segment_id=segment.id, name=segment.name,
        rules=json.dumps(segment.rules, indent=2), count=count,
    )  # fmt: skip


@router.post("/segments/{segment_id}")
async def update_segment(
    request: Request, segment_id: int, session: SessionDep, user: ConsoleUser
) -> Response:
    """Save a change to a segment's name or rule."""
    require_role(user, "editor")
    name, text = await _form(request)
    try:
        data = SegmentPatch(name=name, rules=_parse(text))
        segment = await service.update(session=session, segment_id=segment_id, data=data)
    except (ValidationError, DomainError) as exc:
        if isinstance(exc, DomainError) and exc.status_code == 404:
            raise
        return await _refused(request, user, segment_id, name, text, exc)
    flash(request, f"Segment {segment.name!r} saved.", "success")
    return redirect(f"/admin/segments/{segment.id}")


@router.post("/segments/{segment_id}/delete")
async def delete_segment(
    request: Request, segment_id: int, session: SessionDep, user: ConsoleUser
) -> Response:
    """Delete a segment; when an unfinished issue uses it, say which and keep it."""
    require_role(user, "editor")
    try:
        await service.delete(session=session, segment_id=segment_id)
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        flash(request, exc.detail, "error")
        return redirect(f"/admin/segments/{segment_id}")
    flash(request, "Segment deleted.", "success")
    return redirect("/admin/segments")
