"""multipart/report messages: RFC 3464 delivery status and RFC 5965 feedback (ARF) reports."""

from __future__ import annotations

import dataclasses
from email.message import Message
from email.parser import HeaderParser

from app.bounces.dsn import (
    BounceEvent,
    Context,
    best_status,
    classify_status,
    clean_address,
    text_of,
    verp_token,
    when,
)

STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "message/global")
HEADER_TYPES = ("text/rfc822-headers", "message/rfc822-headers", "text/rfc822-header")
FEEDBACK_TYPES = ("message/feedback-report",)


def parse_report(msg: Message) -> list[BounceEvent]:
    """The failed recipients of a DSN, or the complaint of an ARF report."""
    parts = list(msg.walk())
    feedback = next((p for p in parts if p.get_content_type() in FEEDBACK_TYPES), None)
    context = Context.of(msg, text_of(msg), original_of(parts))
    if feedback is not None or msg.get_param("report-type") == "feedback-report":
        return complaint(feedback, original_of(parts), context)
    events = []
    for part in parts:
        if part.get_content_type() not in STATUS_TYPES:
            continue
        for block in header_blocks(part):
            action = str(block.get("Action", "")).strip().lower()
            # delivered/relayed/expanded are success notices, not bounces.
            if not action.startswith(("fail", "delay", "error")):
                continue
            recipient = block.get("Original-Recipient") or block.get("Final-Recipient")
            if clean_address(recipient) is None:
                recipient = block.get("Final-Recipient")
            diagnostic = one_line(block.get("Diagnostic-Code"))
            status = str(block.get("Status", "")).strip() or None
            kind, counts = classify_status(status, diagnostic, action)
            event = context.event(
                recipient, kind, counts, best_status(status, diagnostic), diagnostic
            )
            if stamp := when(block.get("Last-Attempt-Date")):
                event = dataclasses.replace(event, occurred_at=stamp)
            events.append(event)
    return events


def complaint(
    feedback: Message | None, original: Message | None, context: Context
) -> list[BounceEvent]:
    """The one complaint an ARF report makes; its recipient is often redacted."""
    fields = header_blocks(feedback)[0] if feedback is not None else Message()
    feedback_type = str(fields.get("Feedback-Type", "abuse")).strip().lower()
    if feedback_type == "not-spam":
        return []
    original = original or Message()
    email = (
        clean_address(fields.get("Original-Rcpt-To"))
        or clean_address(original.get("To"))
        or clean_address(fields.get("Removal-Recipient"))
    )
    context = dataclasses.replace(
        context,
        verp_token=context.verp_token or verp_token(fields.get("Original-Mail-From")),
        occurred_at=when(fields.get("Arrival-Date") or fields.get("Received-Date"))
        or context.occurred_at,
    )
    diagnostic = f"feedback-type: {feedback_type}"
    if agent := fields.get("User-Agent"):
        diagnostic += f"; {one_line(agent)}"
    return [context.event(email, "complaint", True, None, diagnostic)]


def original_of(parts: list[Message]) -> Message | None:
    """The original message (or just its headers) that a report quotes."""
    for part in parts:
        kind = part.get_content_type()
        if kind in ORIGINAL_TYPES and part.is_multipart():
            inner = part.get_payload(0)
            if isinstance(inner, Message):
                return inner
        if kind in HEADER_TYPES or (kind in ORIGINAL_TYPES and not part.is_multipart()):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return HeaderParser().parsestr(payload.decode("utf-8", "replace"))
    return None


def header_blocks(part: Message) -> list[Message]:
    """The header blocks of a status or feedback part, however the parser stored them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)] or [Message()]
    # Some MTAs label the part oddly (or base64 it), so the parser left it as text.
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    text = text.replace("\r\n", "\n")
    return [HeaderParser().parsestr(b) for b in text.split("\n\n") if b.strip()] or [Message()]


def one_line(value: object) -> str | None:
    """A folded header as one line, without its "smtp;" type prefix."""
    if not value:
        return None
    text = " ".join(str(value).split())
    kind, _, rest = text.partition(";")
    return (rest.strip() if rest and " " not in kind.strip() else text)[:1000] or None
