"""The media API (`/api/v1/media`) and the public file route (`/media/{key}`)."""

from __future__ import annotations

from fastapi import APIRouter, File, Request, Response, UploadFile
from fastapi.responses import FileResponse

from app.config import Settings
from app.deps import AdminDep, SessionDep, SettingsDep
from app.media import service
from app.media.models import MediaFile
from app.media.schemas import MediaOut, MediaPage
from app.media.storage import KEY, MediaStore, build_store
from app.pagination import BigRowId, Cursor, Limit, decode_cursor, encode_cursor

router = APIRouter(prefix="/api/v1/media", tags=["media"], dependencies=[AdminDep])
files = APIRouter(tags=["media"])
MediaId = BigRowId

# A year, immutable: a key names one content forever (a new upload gets a new key).
FILE_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cross-Origin-Resource-Policy": "cross-origin",
}
TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


def media_store(request: Request) -> MediaStore:
    """The app's media store, built once from its settings."""
    store = getattr(request.app.state, "media_store", None)
    if store is None:
        store = request.app.state.media_store = build_store(request.app.state.settings)
    return store  # type: ignore[no-any-return]


def media_out(settings: Settings, media: MediaFile) -> MediaOut:
    return MediaOut(
        id=media.id,
        url=service.url_for(settings, media.key),
        content_type=media.content_type,
        width=media.width,
        height=media.height,
        bytes=media.bytes,
        name=media.name,
        email_url=service.email_url(settings, media),
        email_width=media.email_width or media.width,
        email_height=media.email_height or media.height,
        created_at=media.created_at,
    )


@router.post("", status_code=201, response_model=MediaOut)
async def upload_media(
    request: Request, session: SessionDep, settings: SettingsDep, file: UploadFile = File(...)
) -> MediaOut:
    """Upload an image (PNG, JPEG, GIF, WebP): 415 for anything else, 413 when too large."""
    media = await service.upload(
        session=session,
        store=media_store(request),
        settings=settings,
        filename=file.filename,
        fp=file.file,
    )
    return media_out(settings, media)


@router.get("", response_model=MediaPage)
async def list_media(
    session: SessionDep, settings: SettingsDep, limit: Limit = 100, cursor: Cursor = None
) -> MediaPage:
    """The media library, newest first."""
    items = await service.list_media(session=session, limit=limit, after_id=decode_cursor(cursor))
    next_cursor = encode_cursor(items[-1].id) if len(items) == limit else None
    return MediaPage(items=[media_out(settings, m) for m in items], next_cursor=next_cursor)


@router.get("/{media_id}", response_model=MediaOut)
async def get_media(media_id: MediaId, session: SessionDep, settings: SettingsDep) -> MediaOut:
    """One image of the library."""
    return media_out(settings, await service.get(session=session, media_id=media_id))


@router.delete("/{media_id}", status_code=204)
async def delete_media(request: Request, media_id: MediaId, session: SessionDep) -> Response:
    """Delete an image and its files."""
    await service.delete(session=session, store=media_store(request), media_id=media_id)
    return Response(status_code=204)


@files.get("/media/{key}", include_in_schema=False)
async def media_file(request: Request, key: str) -> Response:
    """A stored image, public, cached for a year, never sniffed as anything else."""
    if not KEY.fullmatch(key):
        return Response("not found", status_code=404, media_type="text/plain")
    store = media_store(request)
    media_type = TYPES[key.rpartition(".")[2]]
    path = store.local_path(key)
    if path is not None:
        return FileResponse(path, media_type=media_type, headers=FILE_HEADERS)
    data = await store.get(key)
    if data is None:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(data, media_type=media_type, headers=FILE_HEADERS)
