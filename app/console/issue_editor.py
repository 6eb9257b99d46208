"""The issue editor page and its form, shared by the editor's handlers (issues.py) and the
image insert (issue_media.py): the form as the API's fields, errors by field, the page.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response
from pydantic import ValidationError

from app.config import Settings
from app.console.web import flash, page, redirect
from app.delivery.routes import route_names
from app.errors import Conflict, DomainError, Invalid
from app.issues import drafts, preview_cache, service, stored_layouts
from app.issues.schemas import IssuePatch
from app.media import service as media
from app.models import Issue
from app.segments import service as segments
from app.subscribers import service as audience

MAX_SEGMENTS = 500  # the picker's options; the segments page lists them all


def layouts() -> list[str]:
    """The layouts an issue may name: folders of email_templates/, then stored ones."""
    return stored_layouts.names()


def form_values(form: Any) -> dict[str, Any]:
    """The editor form as the API's issue fields (segment "": the whole lists)."""
    segment = str(form.get("segment", "")).strip()
    # The route is on the form only with several servers configured: otherwise left as is.
    route = {"smtp_route": [str(v) for v in form.getlist("smtp_route")] or None
             } if form.get("smtp_route_shown") else {}  # fmt: skip
    return route | {
        "subject": str(form.get("subject", "")),
        "preheader": str(form.get("preheader", "")),
        "from": str(form.get("from", "")).strip() or None,
        "lists": [str(v) for v in form.getlist("lists")],
        "segment": int(segment) if segment.isdigit() and len(segment) < 11 else segment or None,
        "template": str(form.get("template", "newsletter")),
        "format": str(form.get("format", "markdown")),
        "body": str(form.get("body", "")).replace("\r\n", "\n"),
    }


def errors_of(exc: Exception) -> dict[str, str]:
    """A refused form's problems by field, for the error summary and the fields."""
    if isinstance(exc, ValidationError):
        return {str(e["loc"][0]) if e["loc"] else "form": str(e["msg"]) for e in exc.errors()}
    assert isinstance(exc, DomainError)
    return {str(exc.loc[-1]) if exc.loc else "form": exc.detail}


def content_of(values: dict[str, Any]) -> dict[str, Any]:
    """The form's values as the renderer's check takes them."""
    return {k: values[k] for k in ("subject", "preheader", "template", "format", "body")} | {
        "from_addr": values["from"]
    }


def saved_values(issue: Issue) -> dict[str, Any]:
    """The form's values of an issue as stored."""
    values = {k: getattr(issue, k) for k in ("subject", "preheader", "template", "format")}
    return values | {"from": issue.from_addr or "", "lists": [lst.slug for lst in issue.lists],
                     "body": issue.body, "segment": issue.segment_id,
                     "smtp_route": issue.smtp_route or []}  # fmt: skip


async def render(
    request: Request, session: Any, settings: Settings, user: Any, issue: Issue | None, *,
    values: dict[str, Any] | None = None, errors: dict[str, str] | None = None,
    status_code: int = 200, results: list[tuple[str, str]] | None = None,
) -> Response:  # fmt: skip
    """The editor of an issue (None: a new one), with these values and errors if refused."""
    if values is None and issue is not None:
        values = saved_values(issue)
    lists = await audience.browse_lists(session=session, after=0, limit=1000)
    library = await media.list_media(session=session, limit=60)
    found = await segments.list_segments(session=session, limit=MAX_SEGMENTS, after_id=None)
    return page(
        request, "console/issue_edit.html", issue=issue, values=values or {"format": "markdown",
        "template": "newsletter", "lists": [], "segment": None}, errors=errors or {},
        lists=lists, segments=found, layouts=layouts(), default_from=settings.from_,
        status_code=status_code, version=drafts.version_of(issue) if issue else "",
        can_edit=user.role != "viewer", results=results or [],
        library=[(m, media.email_url(settings, m)) for m in library],
        routes=route_names(settings.smtp_url),
    )  # fmt: skip


async def save_form(
    request: Request, session: Any, settings: Settings, user: Any, issue_id: int, *,
    form: Any, values: dict[str, Any], done: str,
) -> Response:  # fmt: skip
    """Save the editor's values with the form's version: back to the editor with `done`, or
    the editor again with the problems (422) or the clash (409), the author's text kept."""
    try:
        saved = await drafts.save(session=session, settings=settings, issue_id=issue_id,
                                  version=str(form.get("version", "")),
                                  data=IssuePatch.model_validate(values))  # fmt: skip
    except (ValidationError, Invalid, Conflict) as exc:
        await session.rollback()
        issue = await service.get(session=session, issue_id=issue_id)
        code = 409 if isinstance(exc, Conflict) else 422
        return await render(request, session, settings, user, issue, values=values,
                            errors=errors_of(exc), status_code=code)  # fmt: skip
    preview_cache.warm(settings, saved)  # the editor's frames ask for it next
    flash(request, done, "success")
    return redirect(f"/admin/issues/{issue_id}")
