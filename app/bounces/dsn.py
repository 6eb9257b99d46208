"""Bounce emails: RFC 3464 DSNs, plain-text MTA bounces and complaint reports, as events.

What a failure *means* is decided in app/replies.py; this module only finds the failed
recipients and the text each one's failure came with. RFC 3464 and RFC 5965 reports are
read in report.py, every other layout in plaintext.py.
"""

from __future__ import annotations

import re
from email import message_from_bytes
from email.message import Message
from email.utils import parseaddr

from app.bounces.events import (
    MAX_SCAN,
    BounceEvent,
    Context,
    NotABounce,
    clean_address,
    event_key,
    message_id_in,
    text_of,
    verp_token,
    when,
)
from app.bounces.plaintext import (
    forwarded_complaint,
    opt_out,
    plain_events,
    ses_events,
)
from app.bounces.report import REPORT_TYPES, original_of, parse_report

__all__ = [
    "BounceEvent",
    "Context",
    "NotABounce",
    "clean_address",
    "event_key",
    "message_id_in",
    "parse_bounce_email",
    "verp_token",
    "when",
]

AUTO_SUBJECT = re.compile(
    r"^(out of (the )?office|automatic reply|auto(matic)?[- ]?re(ply|sponse)|vacation|abwesenheit|"
    r"autoreply|away from)",
    re.I,
)
DAEMON = re.compile(r"^(mailer-daemon|postmaster|mail delivery|mail-daemon)", re.I)


def parse_bounce_email(raw: bytes) -> list[BounceEvent]:
    """Every bounce or complaint a raw email reports; NotABounce when it holds none."""
    try:
        events = _parse(message_from_bytes(bytes(raw[:MAX_SCAN])))
    except NotABounce:
        raise
    except Exception as exc:  # noqa: BLE001  garbage in must be a 422, never a 500
        raise NotABounce(f"unreadable message: {type(exc).__name__}") from exc
    if not events:
        raise NotABounce("no failed recipient found")
    return events


def _parse(msg: Message) -> list[BounceEvent]:
    """Dispatch on what kind of report the message is."""
    parts = list(msg.walk())
    # OpenSMTPD and others send a delivery-status part inside multipart/mixed.
    if any(p.get_content_type() in REPORT_TYPES for p in parts):
        # A report with no failed block (a "delivered" notice, a bare warning) may still be
        # a plain-text bounce around it; a feedback report stands as it is.
        reported = parse_report(msg)
        if reported or any(p.get_content_type() == "message/feedback-report" for p in parts):
            return reported
    if AUTO_SUBJECT.search(str(msg.get("Subject", "")).strip()):
        raise NotABounce("auto-reply")
    if events := opt_out(msg):
        return events
    text = text_of(msg)
    context = Context.of(msg, text, original_of(parts))
    found = ses_events(msg, text)
    if found is not None:
        if not found:
            raise NotABounce("an SES notification that reports no bounce or complaint")
        return found
    events = forwarded_complaint(msg, context) or plain_events(msg, context)
    if not events and is_auto_reply(msg):
        raise NotABounce("auto-reply")
    return events


def is_auto_reply(msg: Message) -> bool:
    """Out-of-office and other auto-replies (RFC 3834 and the vendors' own headers)."""
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress-Reply")):
        return True
    if str(msg.get("Precedence", "")).strip().lower() == "auto_reply":
        return True
    submitted = str(msg.get("Auto-Submitted", "no")).strip().lower()
    # MTAs mark bounces auto-replied too (RFC 3834), so only a person's mailbox counts here.
    sender = parseaddr(str(msg.get("From", "")))
    return submitted.startswith("auto-") and not DAEMON.match(sender[1] or sender[0])
