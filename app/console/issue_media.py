"""The editor's image insert without JavaScript: the editor form, posted by its Insert
button, comes back saved with the chosen image of the media library at the end of the body.

editor.js inserts at the cursor instead and leaves the saving to autosave. Either way the
image carries its width, height and the alt text typed, as an HTML <img> (which Markdown
bodies take as is). The save is version-checked like every other: a clash is a 409 with
the author's text, image included, still in the form.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from app.config import Settings
from app.console import issue_editor as editor
from app.console.web import ConsoleUser, require_role
from app.deps import SessionDep, SettingsDep
from app.errors import Invalid, NotFound, invalid
from app.issues import service
from app.media import service as media
from app.media.models import MediaFile

router = APIRouter(tags=["console"])  # included by issues.router, under /admin
IssueId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def image_tag(settings: Settings, chosen: MediaFile, alt: str) -> str:
    """The <img> the editor writes: the email-width copy, its size, the alt text."""
    width, height = chosen.email_width or chosen.width, chosen.email_height or chosen.height
    return (f'<img src="{escape(media.email_url(settings, chosen))}" width="{width}"'
            f' height="{height}" alt="{escape(alt.strip())}">')  # fmt: skip


def with_image(body: str, tag: str) -> str:
    """The body with the image as a paragraph of its own at the end."""
    return f"{body.rstrip()}\n\n{tag}\n" if body.strip() else f"{tag}\n"


async def _chosen(session: SessionDep, raw: str) -> MediaFile:
    if not (raw.isascii() and raw.isdigit() and len(raw) < 11):
        raise invalid("media_id", "choose an image of the media library to insert")
    try:
        return await media.get(session=session, media_id=int(raw))
    except NotFound:
        raise invalid("media_id", "that image is no longer in the media library") from None


@router.post("/issues/{issue_id}/images")
async def insert_image(issue_id: IssueId, request: Request, session: SessionDep,
                       settings: SettingsDep, user: ConsoleUser) -> Response:  # fmt: skip
    """Save the editor form with the chosen image appended to the body; back to the editor."""
    require_role(user, "editor")
    form = await request.form()
    values = editor.form_values(form)
    await service.get(session=session, issue_id=issue_id)  # 404 before anything else
    try:
        chosen = await _chosen(session, str(form.get("media_id", "")))
    except Invalid as exc:
        issue = await service.get(session=session, issue_id=issue_id)
        return await editor.render(request, session, settings, user, issue, values=values,
                                   errors=editor.errors_of(exc), status_code=422)  # fmt: skip
    tag = image_tag(settings, chosen, str(form.get("image_alt", "")))
    values["body"] = with_image(values["body"], tag)
    done = "The image is at the end of the body, and the issue is saved."
    return await editor.save_form(request, session, settings, user, issue_id, form=form,
                                  values=values, done=done)  # fmt: skip
