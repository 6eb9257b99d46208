"""Shapes of the media API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class MediaOut(BaseModel):
    id: int
    url: str
    content_type: str
    width: int
    height: int
    bytes: int
    name: str
    email_url: str
    email_width: int
    email_height: int
    created_at: datetime


class MediaPage(BaseModel):
    items: list[MediaOut]
    next_cursor: str | None
