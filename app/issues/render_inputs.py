"""What the renderer is given, and what templates see of it.

`IssueContent` is an issue as the renderer needs it and `Recipient` one delivery's personal
data; `template_context()` turns a recipient into the names templates read, `subscriber`
being a plain object so a template reaches no dict method. No settings are read here: the
neutral subscriber of previews and the archive is made from the site URL it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import i18n


@dataclass(frozen=True)
class IssueContent:
    """What an issue says, as the renderer needs it."""

    id: int
    subject: str
    preheader: str
    from_addr: str
    template: str
    format: str
    body: str
    list_id: str
    list_names: tuple[str, ...] = ()
    date: datetime | None = None
    language: str = i18n.SOURCE_LANGUAGE  # of the layout's own words (footer, date): its lists'


@dataclass(frozen=True)
class Recipient:
    """One delivery's personal data and ids."""

    email: str
    name: str
    attributes: Mapping[str, Any]
    unsubscribe_url: str
    preferences_url: str
    message_id: str
    return_path: str | None = None
    delivery_id: int | None = None  # None: a preview or test send, never tracked
    tracked: bool = False  # False: the reader said no (attributes.tracking) or nothing to track


class _Subscriber:
    """The `subscriber` of templates: a plain object, so `subscriber.items` reaches no dict method.

    A missing name or email is no attribute at all, so the template sees it as undefined
    and `{{ subscriber.name | default("colleague") }}` works for the many with no name.
    """

    __slots__ = ("attributes", "email", "name")

    def __init__(self, name: str | None, email: str | None, attributes: Mapping[str, Any]):
        if name:
            self.name = name
        if email:
            self.email = email
        self.attributes = attributes


def sample_recipient(site: str) -> Recipient:
    """The neutral subscriber of previews without one and of the public archive.

    `site` is the public site's root URL from the app's settings ("" for site-relative
    links); the neutral subscriber's links lead to its sign-up page. Its Message-ID is
    never sent: only a recipient made by compose.py is ever rendered into a message.
    """
    url = site.rstrip("/") + "/subscribe"
    return Recipient("", "", {}, url, url, "<sample@localhost>")


def template_context(r: Recipient, issue: Mapping[str, Any], archive_url: str) -> dict[str, Any]:
    """The names a body, subject and layout see for this recipient (the per-recipient part)."""
    return {
        "subscriber": _Subscriber(r.name, r.email, r.attributes),
        "issue": issue,
        "unsubscribe_url": r.unsubscribe_url,
        "preferences_url": r.preferences_url,
        "archive_url": archive_url,
    }
