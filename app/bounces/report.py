"""multipart/report messages: RFC 3464 delivery status and RFC 5965 feedback (ARF) reports."""

from __future__ import annotations

import dataclasses
from email.message import Message
from email.parser import HeaderParser

from app.bounces.events import BounceEvent, Context, clean_address, text_of, verp_token, when
from app.bounces.plaintext import failed_addresses, notification, segment
from app.replies import best_status, classify

STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")
ORIGINAL_TYPES = ("message/rfc822", "message/global")
HEADER_TYPES = ("text/rfc822-headers", "message/rfc822-headers", "text/rfc822-header")
FEEDBACK_TYPES = ("message/feedback-report",)
REPORT_TYPES = (*STATUS_TYPES, *FEEDBACK_TYPES)


def parse_report(msg: Message) -> list[BounceEvent]:
    """The failed recipients of a DSN, or the complaint of an ARF report."""
    parts = list(msg.walk())
    feedback = next((p for p in parts if p.get_content_type() in FEEDBACK_TYPES), None)
    context = Context.of(msg, text_of(msg), original_of(parts))
    if feedback is not None or msg.get_param("report-type") == "feedback-report":
        return complaint(feedback, original_of(parts), context)
    blocks = [
        block
        for part in parts
        if part.get_content_type() in STATUS_TYPES
        for block in header_blocks(part)
        # delivered/relayed/expanded are success notices, not bounces.
        if str(block.get("Action", "")).strip().lower().startswith(("fail", "delay", "error"))
    ]
    text = notification(msg)
    named = [a for b in blocks if (a := recipient_of(b))]
    starts = failed_addresses(msg, text)
    # A Final-Recipient that is a pipe or a bare "@domain": the notice names the address.
    spare = [a for a in starts if a not in named]
    events = []
    for block in blocks:
        action = str(block.get("Action", "")).strip().lower()
        recipient = recipient_of(block) or (spare.pop(0) if spare else None)
        diagnostic = one_line(block.get("Diagnostic-Code"))
        # The remote server's reply, and the stage it came at, are often only in the notice
        # (OpenSMTPD, Exim, Exchange); the Status is the reporting MTA's summary of them.
        notice = segment(text, recipient, starts) if recipient else None
        evidence = " ".join(filter(None, [diagnostic, notice]))
        diagnostic = diagnostic or notice
        status = str(block.get("Status", "")).strip() or None
        verdict = classify(evidence, status=status, action=action)
        event = context.event(
            recipient, verdict.kind, verdict.counts, best_status(status, diagnostic), diagnostic
        )
        if stamp := when(block.get("Last-Attempt-Date")):
            event = dataclasses.replace(event, occurred_at=stamp)
        events.append(event)
    return events


def recipient_of(block: Message) -> str | None:
    """The recipient a status block is about, preferring the address the sender used."""
    for field in ("Original-Recipient", "Final-Recipient"):
        if address := clean_address(block.get(field)):
            return address
    return None


def complaint(
    feedback: Message | None, original: Message | None, context: Context
) -> list[BounceEvent]:
    """The one complaint an ARF report makes; its recipient is often redacted."""
    fields = header_blocks(feedback)[0] if feedback is not None else Message()
    feedback_type = str(fields.get("Feedback-Type", "abuse")).strip().lower()
    if feedback_type == "not-spam":
        return []
    original = original or Message()
    rcpt = fields.get_all("Original-Rcpt-To") or []
    emails = [a for v in rcpt if (a := clean_address(v, redacted=True))]
    email = (
        None
        if emails
        else clean_address(original.get("To"), redacted=True)
        or clean_address(fields.get("Removal-Recipient"), redacted=True)
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
    targets: list[str | None] = list(emails) or [email]
    return [context.event(e, "complaint", True, None, diagnostic) for e in targets]


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
