"""The media library's rules: what is accepted, how it is named and stored, and its URLs."""

from __future__ import annotations

import io
import re
import secrets
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.errors import NotFound, TooLarge
from app.media import images
from app.media.models import MediaFile
from app.media.storage import MediaStore
from app.media.urls import email_url as email_url  # re-exported: callers ask the service
from app.media.urls import url_for as url_for

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]+")


def display_name(filename: str | None) -> str:
    """The uploader's file name without any folder part, for showing only (never a path)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    return _UNSAFE_NAME.sub("", base).strip()[:200] or "image"


def file_size(fp: BinaryIO) -> int:
    size = fp.seek(0, io.SEEK_END)
    fp.seek(0)
    return size


async def upload(
    *,
    session: AsyncSession,
    store: MediaStore,
    settings: Settings,
    filename: str | None,
    fp: BinaryIO,
) -> MediaFile:
    """Check, store and record one uploaded image; raise TooLarge or Unsupported."""
    size = file_size(fp)
    if size > settings.max_media_bytes:
        raise TooLarge(f"the file is over the {settings.max_media_bytes:,}-byte limit")
    info = images.inspect(fp, max_pixels=settings.max_media_pixels)
    stem = secrets.token_hex(16)
    media = MediaFile(
        key=f"{stem}.{info.extension}",
        name=display_name(filename),
        content_type=info.content_type,
        width=info.width,
        height=info.height,
        bytes=size,
    )
    scaled = images.email_copy(fp, info)
    await store.put(media.key, fp, info.content_type)
    if scaled is not None:
        data, media.email_width, media.email_height = scaled
        media.email_key = f"{stem}-600.{info.extension}"
        await store.put(media.email_key, io.BytesIO(data), info.content_type)
    session.add(media)
    await session.flush()
    return media


async def list_media(
    *, session: AsyncSession, limit: int = 100, after_id: int | None = None
) -> list[MediaFile]:
    """The newest images first, a page at a time."""
    query = select(MediaFile).order_by(MediaFile.id.desc()).limit(limit)
    if after_id is not None:
        query = query.where(MediaFile.id < after_id)
    return list((await session.scalars(query)).all())


async def get(*, session: AsyncSession, media_id: int) -> MediaFile:
    """One image of the library; NotFound otherwise."""
    media = await session.get(MediaFile, media_id)
    if media is None:
        raise NotFound("no such image")
    return media


async def delete(*, session: AsyncSession, store: MediaStore, media_id: int) -> None:
    """Forget an image and remove its files (issues already sent keep their copies' links)."""
    media = await get(session=session, media_id=media_id)
    await session.delete(media)
    await session.flush()
    for key in (media.key, media.email_key):
        if key:
            await store.delete(key)
