"""The glue between a database Issue and the renderer: content, recipients, Message-IDs.

The dispatcher, previews and test sends all build their messages here, so what a
preview shows is byte for byte what a delivery sends (apart from the per-delivery ids).
"""

from __future__ import annotations

import asyncio
import hmac
import re
import uuid
from email.utils import parseaddr
from functools import lru_cache
from typing import Any

from app import i18n, tokens
from app.config import Settings
from app.engagement import settings as engagement_settings
from app.engagement.links import Tracking
from app.issues.footer import issue_language
from app.issues.rendering import CompiledIssue, IssueContent, Recipient, compile_issue
from app.models import Issue

_MESSAGE_ID = re.compile(r"<?(\d+)\.(\d+)\.([0-9a-f]{8})@([^>\s]+)>?")
_NOT_DOT_ATOM = re.compile(r"[^a-z0-9-]+")


def _public(settings: Settings) -> str:
    return settings.public_url.rstrip("/")


def _quoted(phrase: str) -> str:
    """A header phrase as an RFC 5322 quoted-string; CR/LF and control characters dropped."""
    phrase = "".join(ch for ch in phrase if ch >= " " and ch != "\x7f").strip()
    return '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"'


def list_id(settings: Settings, issue: Issue) -> str:
    """The List-Id header value (RFC 2919) of the issue's first list."""
    domain = settings.sender_domain.encode("idna").decode("ascii")
    if not issue.lists:
        return f"{_quoted(settings.organisation_name)} <issues.{domain}>"
    first = issue.lists[0]
    # A list-id is a dot-atom: a slug with anything else in it would break the header.
    label = _NOT_DOT_ATOM.sub("-", first.slug.lower()).strip("-") or f"list-{first.id}"
    return f"{_quoted(first.name)} <{label}.{domain}>"


def issue_content(settings: Settings, issue: Issue) -> IssueContent:
    """What the renderer needs from an issue (its `lists` loaded)."""
    return IssueContent(
        id=issue.id,
        subject=issue.subject,
        preheader=issue.preheader or "",
        from_addr=issue.from_addr or settings.from_,
        template=issue.template,
        format=issue.format,
        body=issue.body,
        list_id=list_id(settings, issue),
        list_names=tuple(lst.name for lst in issue.lists),
        date=issue.started_at,
        language=issue_language(
            [lst.language for lst in issue.lists], i18n.default_language(settings)
        ),
    )


def archive_url(settings: Settings, issue_id: int) -> str:
    """The public web version of an issue."""
    return f"{_public(settings)}/archive/{issue_id}"


def compile_for_send(settings: Settings, issue: Issue, *, web: bool = False) -> CompiledIssue:
    """Compile an issue once for many recipients (`web`: the archive's version)."""
    return compile_issue(
        issue_content(settings, issue), archive_url=archive_url(settings, issue.id), web=web,
        site_url=_public(settings), tracking=None if web else tracking_for(settings, issue),
    )  # fmt: skip


def tracking_for(settings: Settings, issue: Issue) -> Tracking | None:
    """What this issue tracks under TIDINGS_TRACKING and its own flags; None: nothing."""
    opens, clicks = engagement_settings.tracks(settings, issue.track_opens, issue.track_clicks)
    if not (opens or clicks):
        return None
    return Tracking(issue_id=issue.id, site_url=_public(settings),
                    secret=settings.secret_key_value, opens=opens, clicks=clicks)  # fmt: skip


def _mac(settings: Settings, issue_id: int, delivery_id: int) -> str:
    key = tokens.purpose_key(settings.secret_key_value, "message-id")  # the same bytes
    return tokens.hmac_sha256(key, f"{issue_id}.{delivery_id}".encode()).hex()[:8]


def message_id(settings: Settings, *, issue_id: int, delivery_id: int) -> str:
    """The Message-ID of one delivery: the same on every retry, so receivers can dedupe."""
    mac = _mac(settings, issue_id, delivery_id)
    # Settings.sender_domain, from the From parsed once rather than per message.
    domain = _address_of(settings.from_).rpartition("@")[2] or "localhost"
    return f"<{issue_id}.{delivery_id}.{mac}@{domain}>"


def delivery_from_message_id(settings: Settings, message_id: str) -> int | None:
    """The delivery id a Message-ID of ours names, or None if it is not ours or was altered."""
    match = _MESSAGE_ID.fullmatch(message_id.strip())
    if match is None:
        return None
    issue_id, delivery_id, mac = int(match[1]), int(match[2]), match[3]
    if not hmac.compare_digest(mac, _mac(settings, issue_id, delivery_id)):
        return None
    return delivery_id


def recipient(
    settings: Settings,
    *,
    issue_id: int,
    delivery_id: int | None,
    subscriber_id: int | None,
    email: str,
    name: str | None,
    attributes: dict[str, Any],
) -> Recipient:
    """One recipient's personal data, links and ids; delivery_id None means a test send."""
    secret = settings.secret_key_value
    if subscriber_id is None:
        # A test send or a sample preview: nobody to unsubscribe, so the links lead to a
        # page that says it was a test rather than to a token that answers 404.
        unsubscribe_url = f"{_public(settings)}/test-message/unsubscribe"
        preferences_url = f"{_public(settings)}/test-message/preferences"
    else:
        token = tokens.make(secret, "unsubscribe", subscriber_id, issue_id)
        unsubscribe_url = f"{_public(settings)}/u/{token}"
        preferences_url = f"{_public(settings)}/preferences/{token}"
    if delivery_id is None:
        mid = f"<test.{issue_id}.{uuid.uuid4().hex}@{settings.sender_domain}>"
    else:
        mid = message_id(settings, issue_id=issue_id, delivery_id=delivery_id)
    return_path = None
    if settings.bounce_domain and delivery_id is not None:
        return_path = f"bounces+{tokens.make(secret, 'verp', delivery_id)}@{settings.bounce_domain}"
    return Recipient(
        email=email,
        name=name or "",
        attributes=attributes or {},
        unsubscribe_url=unsubscribe_url,
        preferences_url=preferences_url,
        message_id=mid,
        return_path=return_path,
        delivery_id=delivery_id,
        # A reader who said no gets the untracked message: no pixel, links as written.
        tracked=delivery_id is not None and (attributes or {}).get("tracking") is not False,
    )


def sample_recipient(settings: Settings, issue_id: int, *, nameless: bool = False) -> Recipient:
    """The made-up subscriber of previews that name none; `nameless`: one who gave no name."""
    return recipient(
        settings,
        issue_id=issue_id,
        delivery_id=None,
        subscriber_id=None,
        email="alex@example.com",
        name="" if nameless else "Alex Example",
        attributes={},
    )


def envelope_sender(settings: Settings, r: Recipient, *, from_addr: str | None = None) -> str:
    """MAIL FROM: the VERP address when there is one, else the address of the From."""
    return r.return_path or _address_of(from_addr or settings.from_)


@lru_cache(maxsize=64)
def _address_of(from_header: str) -> str:
    # parseaddr costs ~7% of a send when run per message; an issue has one From.
    return parseaddr(from_header)[1]


async def dkim_sign(settings: Settings, data: bytes) -> bytes:
    """The message DKIM-signed when DKIM is configured (off the event loop), else as is."""
    if not (settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file):
        return data
    return await asyncio.to_thread(_sign, settings, data)


def _sign(settings: Settings, data: bytes) -> bytes:
    from app.delivery.dkim import signer_from_settings

    signer = signer_from_settings(settings)
    return signer.sign(data) if signer is not None else data
