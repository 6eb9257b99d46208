"""Where a stored media file is on the web. Apart from service.py so that the renderer
(branding's logo) reads a URL without loading Pillow, which only an upload needs."""

from __future__ import annotations

from app.config import Settings
from app.media.models import MediaFile


def url_for(settings: Settings, key: str) -> str:
    """The public, absolute URL of a stored file, as written into emails."""
    return f"{settings.public_url.rstrip('/')}/media/{key}"


def email_url(settings: Settings, media: MediaFile) -> str:
    """The URL to put in an email: the column-width copy when there is one."""
    return url_for(settings, media.email_key or media.key)
