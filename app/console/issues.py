"""Console pages of issues: the list, the editor (save, autosave, checks, preview), test sends.

Sending, scheduling, progress and the report are in issue_send.py. Every handler calls
the issues services the API calls; the editor's JSON endpoints serve editor.js, and
every page works as plain forms without it.
"""

from __future__ import annotations

from typing import Annotated, Any

from email_validator import EmailNotValidError, validate_email
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError

from app.config import Settings
from app.console import issue_editor as editor
from app.console import issue_media
from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import MailerDep, SessionDep, SettingsDep
from app.errors import DomainError, Invalid
from app.issues import drafts, preview_cache, progress, service, testsend
from app.issues.lifecycle import EDITABLE
from app.issues.schemas import IssueIn, IssuePatch

router = APIRouter(prefix="/admin", tags=["console"])
# The no-JS preview is framed by the editor, so it lives outside /admin, whose pages
# refuse to be framed; its own CSP sandboxes it and lets nothing run.
frames = APIRouter(tags=["console"])
router.include_router(issue_media.router)  # the editor's no-JS image insert
FRAME_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src https: http: data:; "
    "style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
MAX_TEST_ADDRESSES = 10
IssueId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/issues")
async def issue_index(request: Request, session: SessionDep, user: ConsoleUser) -> Response:
    """A page of issues, newest first, with status, recipients, sent, failed and bounced."""
    raw = request.query_params.get("before", "")
    before = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 11 else None
    issues, older = await progress.list_page(session, before=before)
    figures = await progress.list_figures(session, issues)
    return page(request, "console/issue_index.html", issues=issues, figures=figures,
                older=older, paged=before is not None,
                can_edit=user.role != "viewer")  # fmt: skip


@router.get("/issues/new")
async def new_issue(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """An empty editor."""
    return await editor.render(request, session, settings, user, None)


@router.post("/issues")
async def create_issue(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """Create a draft from the editor form."""
    require_role(user, "editor")
    values = editor.form_values(await request.form())
    try:
        issue = await service.create(session=session, settings=settings,
                                     data=IssueIn.model_validate(values))  # fmt: skip
    except (ValidationError, Invalid) as exc:
        return await editor.render(request, session, settings, user, None, values=values,
                             errors=editor.errors_of(exc), status_code=422)  # fmt: skip
    flash(request, "Draft created.", "success")
    return redirect(f"/admin/issues/{issue.id}")


@router.post("/issues/{issue_id}/duplicate")
async def duplicate_issue(issue_id: IssueId, request: Request, session: SessionDep,
                          user: ConsoleUser) -> Response:  # fmt: skip
    """A new draft with this issue's content (last month's as the start of this month's)."""
    require_role(user, "editor")
    copy = await service.duplicate(session=session, issue_id=issue_id)
    flash(request, f"Copied into a new draft (issue {copy.id}).", "success")
    return redirect(f"/admin/issues/{copy.id}")


@router.post("/issues/check")
async def check(request: Request, settings: SettingsDep, user: ConsoleUser) -> Response:
    """editor.js, while typing: the API's own compile check, as problems with their line."""
    values = editor.form_values(await request.form())
    found = drafts.problems(settings, editor.content_of(values))
    return JSONResponse({"problems": [p.__dict__ for p in found]})


@router.get("/issues/{issue_id}")
async def edit_issue(
    issue_id: IssueId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    """The editor of a draft or scheduled issue; the report of any other."""
    issue = await service.get(session=session, issue_id=issue_id)
    if issue.status not in EDITABLE:
        return redirect(f"/admin/issues/{issue_id}/report")
    return await editor.render(request, session, settings, user, issue)


@router.post("/issues/{issue_id}")
async def save_issue(
    issue_id: IssueId,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    user: ConsoleUser,
) -> Response:
    """Save the editor form, unless someone else saved since it was loaded (then 409)."""
    require_role(user, "editor")
    form = await request.form()
    await service.get(session=session, issue_id=issue_id)  # 404 before anything else
    return await editor.save_form(request, session, settings, user, issue_id, form=form,
                                  values=editor.form_values(form), done="Saved.")  # fmt: skip


@router.post("/issues/{issue_id}/autosave")
async def autosave(issue_id: IssueId, request: Request, session: SessionDep, settings: SettingsDep,
                   user: ConsoleUser) -> Response:  # fmt: skip
    """editor.js: save the form; 200 with the new version, 422 with problems, 409 on a clash."""
    require_role(user, "editor")
    form = await request.form()
    values = editor.form_values(form)
    try:
        issue = await drafts.save(session=session, settings=settings, issue_id=issue_id,
                                  version=str(form.get("version", "")),
                                  data=IssuePatch.model_validate(values))  # fmt: skip
    except ValidationError as exc:
        errors = editor.errors_of(exc).items()
        fields = [{"field": f, "message": m, "line": None} for f, m in errors]
        return JSONResponse({"problems": fields}, 422)
    except Invalid as exc:
        await session.rollback()
        found = drafts.problems(settings, editor.content_of(values)) or [
            drafts.Problem(editor.errors_of(exc).popitem()[0], exc.detail, None)
        ]
        return JSONResponse({"problems": [p.__dict__ for p in found]}, 422)
    preview_cache.warm(settings, issue)  # editor.js asks for the preview next
    return JSONResponse({"version": drafts.version_of(issue)})


async def _preview(request: Request, session: Any, settings: Settings, issue_id: int) -> Any:
    issue = await service.get(session=session, issue_id=issue_id)
    raw = request.query_params.get("subscriber_id", "")
    return await drafts.render_preview(
        session=session, settings=settings, issue=issue,
        subscriber_id=int(raw) if raw.isdigit() else None,
        sample=request.query_params.get("sample", "named"),
    )  # fmt: skip


@router.get("/issues/{issue_id}/preview.json")
async def preview_json(issue_id: IssueId, request: Request, session: SessionDep,
                       settings: SettingsDep, user: ConsoleUser) -> Response:  # fmt: skip
    """editor.js: the saved issue as compiled for sending, with its size and warnings."""
    return JSONResponse(await _preview(request, session, settings, issue_id))


@router.get("/issues/{issue_id}/text")
async def text_part(issue_id: IssueId, request: Request, session: SessionDep,
                    settings: SettingsDep, user: ConsoleUser) -> Response:  # fmt: skip
    """The plain-text part, as the recipient's mail program shows it."""
    preview = await _preview(request, session, settings, issue_id)
    return PlainTextResponse(preview["text"])


@frames.get("/console-preview/issues/{issue_id}", include_in_schema=False)
async def preview_frame(issue_id: IssueId, request: Request, session: SessionDep,
                        settings: SettingsDep, user: ConsoleUser) -> Response:  # fmt: skip
    """The HTML part for the editor's sandboxed iframe (nothing in it can run)."""
    preview = await _preview(request, session, settings, issue_id)
    return Response(preview["html"], media_type="text/html", headers=FRAME_HEADERS)


@router.post("/issues/{issue_id}/test")
async def test_send(issue_id: IssueId, request: Request, session: SessionDep, settings: SettingsDep,
                    mailer: MailerDep, user: ConsoleUser) -> Response:  # fmt: skip
    """Send the saved issue to a few addresses and show the result of each attempt."""
    require_role(user, "editor")
    form = await request.form()
    raw = str(form.get("test_emails", "")).replace(",", " ").split()
    addresses = list(dict.fromkeys(raw))[:MAX_TEST_ADDRESSES]
    issue = await service.get(session=session, issue_id=issue_id)
    results: list[tuple[str, str]] = []
    for address in addresses:
        try:
            validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            results.append((address, f"not sent: {exc}"))
            continue
        try:
            await testsend.send_test(session=session, settings=settings, mailer=mailer,
                                     issue_id=issue_id, emails=[address])  # fmt: skip
        except DomainError as exc:
            results.append((address, f"refused: {exc.detail}"))
        else:
            results.append((address, "sent"))
    if not addresses:
        flash(request, "Give at least one address for the test.", "error")
    return await editor.render(request, session, settings, user, issue, results=results)
