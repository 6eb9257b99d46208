"""Console pages of the media library: see, upload (a form, or fetch() from the editor), delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from app.console.web import ConsoleUser, flash, page, redirect, require_role
from app.deps import SessionDep, SettingsDep
from app.errors import DomainError
from app.media import service
from app.media.router import media_out, media_store

router = APIRouter(prefix="/admin", tags=["console"])
MediaId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _back(value: object) -> str:
    """Where to go after an upload: a console page of ours, never another site."""
    text = str(value or "")
    return text if text.startswith("/admin/") and "//" not in text else "/admin/media"


@router.get("/media")
async def media_index(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """The library: every image with its size, URL and a delete button."""
    items = await service.list_media(session=session, limit=500)
    return page(request, "console/media_index.html",
                items=[media_out(settings, m) for m in items],
                max_bytes=settings.max_media_bytes, can_edit=user.role != "viewer")  # fmt: skip


@router.post("/media")
async def upload(
    request: Request, session: SessionDep, settings: SettingsDep, user: ConsoleUser
) -> Response:
    """Upload one image; JSON for the editor's fetch(), else back to the page with a flash."""
    require_role(user, "editor")
    form = await request.form()
    wants_json = "application/json" in request.headers.get("accept", "")
    file = form.get("file")
    try:
        if not isinstance(file, UploadFile):
            raise DomainError("choose a file to upload")
        media = await service.upload(session=session, store=media_store(request),
                                     settings=settings, filename=file.filename,
                                     fp=file.file)  # fmt: skip
    except DomainError as exc:
        if wants_json:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        flash(request, f"Not uploaded: {exc.detail}", "error")
        return redirect(_back(form.get("back")))
    out = media_out(settings, media)
    if wants_json:
        return JSONResponse(out.model_dump(mode="json"), status_code=201)
    flash(request, f"Uploaded {media.name} ({media.width}×{media.height}).", "success")
    return redirect(_back(form.get("back")))


@router.post("/media/{media_id}/delete")
async def delete(media_id: MediaId, request: Request, session: SessionDep,
                 user: ConsoleUser) -> Response:  # fmt: skip
    """Delete an image and its files."""
    require_role(user, "editor")
    await service.delete(session=session, store=media_store(request), media_id=media_id)
    flash(request, "Image deleted.", "success")
    return redirect("/admin/media")
