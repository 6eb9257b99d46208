"""What the renderer is given, and what templates see of it.

`IssueContent` is an issue as the renderer needs it and `Recipient` one delivery's personal
data; `template_context()` turns a recipient into the names templates read, `subscriber`
being a plain object so a template reaches no dict method. No settings are read here: the
neutral subscriber of previews and the archive is made from the site URL it is given.
`SubjectTemplate` is the issue's subject when it reads those names (templating.py's slots
filled into one string).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app import i18n
from app.issues.templating import DYNAMIC_NAMES, SLOT_RE, BodyError, HeaderError, SlottedTemplate

log = logging.getLogger(__name__)


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


class SubjectTemplate:
    """A subject line as a template: the body's slot machinery, filled into one string.

    Errors are HeaderErrors naming the subject, so the API's 422 points at that field. The
    caller cleans the result for the header; per recipient this never raises.
    """

    def __init__(self, source: str, static: Mapping[str, Any]):
        try:
            self.template = SlottedTemplate(
                source, tag="H", autoescape=False, dynamic=DYNAMIC_NAMES
            )
            self.fast = self.template.fast
            skeleton = self.template.render_skeleton(static) if self.fast else ""
        except BodyError as exc:
            raise HeaderError(f"subject: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any failure here is the author's to fix
            raise HeaderError(f"subject fails to render: {exc}") from None
        self._chunks = SLOT_RE.split(skeleton)
        # A template that reads no subscriber data renders the same for everyone.
        self.constant = skeleton if self.fast and not self.template.slot_count else None

    def render(
        self,
        context: Mapping[str, Any],
        *,
        neutral: Mapping[str, Any] | None = None,
        force_slow: bool = False,
    ) -> str:
        """The subject for one recipient: failing slots render empty, as in bodies.

        A failing slow-path template falls back to the `neutral` context, then to "".
        """
        if self.fast and not force_slow:
            return _fill(self._chunks, self.template.eval_slots(context))
        for ctx in (context, neutral or context):
            try:
                return _fill(*self._recorded(ctx))
            except Exception:  # noqa: BLE001 - one subscriber's odd data must not stop a send
                log.warning("subject failed for one recipient", exc_info=True)
        return ""

    def check(self, context: Mapping[str, Any]) -> str:
        """Render strictly, every expression evaluated, for validation with a sample subscriber."""
        try:
            return _fill(*self._recorded(context))
        except Exception as exc:  # noqa: BLE001 - any failure here is the author's to fix
            raise HeaderError(f"subject fails to render: {exc}") from None

    def _recorded(self, context: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        text, values = self.template.render_recording(context)
        return SLOT_RE.split(text), values


def _fill(parts: list[str], values: list[str]) -> str:
    """Text split by SLOT_RE (static, tag, index, static, ...) with the slot values put back."""
    out = [parts[0]]
    for k in range(1, len(parts), 3):
        index = int(parts[k + 1])
        out += (values[index] if index < len(values) else "", parts[k + 2])
    return "".join(out)
