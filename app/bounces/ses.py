"""Amazon SES notifications: the bounces and complaints in one, raw or wrapped by SNS.

Only reading: the SNS signature that vouches for a notification posted to our webhook is
checked in sns.py, which needs httpx and cryptography (~15 MB in a process). Bounce
mail parsing (plaintext.py: SES JSON sent by email) runs in every dispatcher, which
never verifies an SNS signature, so it reads SES through here and loads neither.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from app.bounces.events import BounceEvent, event_key, verp_token
from app.replies import classify


def _ses_kind(bounce: dict[str, Any], recipient: dict[str, Any]) -> tuple[str, bool]:
    """Classify one SES bounced recipient by bounceType, subtype and its status code."""
    bounce_type = bounce.get("bounceType")
    sub_type = bounce.get("bounceSubType")
    if sub_type in ("ContentRejected", "AttachmentRejected", "MessageTooLarge"):
        return ("hard" if bounce_type == "Permanent" else "soft"), False
    if bounce_type == "Permanent":
        if sub_type in ("Suppressed", "OnAccountSuppressionList"):  # already known bad at SES
            return "hard", True
        verdict = classify(recipient.get("diagnosticCode"), status=recipient.get("status"))
        return verdict.kind, verdict.counts
    return "soft", True  # Transient and Undetermined: SES itself says "may succeed later"


def parse_ses(payload: dict[str, Any]) -> list[BounceEvent]:
    """The bounces and complaints in an SES notification, raw or wrapped in an SNS message."""
    if "Type" in payload:
        if payload.get("Type") != "Notification":
            return []  # subscription (un)confirmations carry no bounce
        try:
            payload = json.loads(payload.get("Message") or "{}")
        except ValueError:
            return []
    if not isinstance(payload, dict):
        return []
    kind = payload.get("notificationType") or payload.get("eventType")
    mail = payload.get("mail") or {}
    headers = {str(h.get("name", "")).lower(): h.get("value") for h in mail.get("headers") or []}
    common: dict[str, Any] = {
        "message_id": (mail.get("commonHeaders") or {}).get("messageId")
        or headers.get("message-id"),
        "verp_token": verp_token(headers.get("return-path"), mail.get("source")),
        "provider_id": mail.get("messageId"),
    }
    if kind == "Bounce":
        bounce = payload.get("bounce") or {}
        return [_ses_bounce(bounce, r, common) for r in bounce.get("bouncedRecipients") or []]
    if kind == "Complaint":
        complaint = payload.get("complaint") or {}
        # Sent for addresses on the suppression list, or a "not-spam" report: no complaint.
        if (
            complaint.get("complaintSubType")
            or complaint.get("complaintFeedbackType") == "not-spam"
        ):
            return []
        return [
            BounceEvent(
                type="complaint",
                email=str(r.get("emailAddress") or "").lower() or None,
                diagnostic=f"feedback-type: {complaint.get('complaintFeedbackType') or 'abuse'}",
                event_key=event_key("ses", complaint.get("feedbackId"), r.get("emailAddress")),
                occurred_at=iso_time(complaint.get("timestamp")),
                **common,
            )
            for r in complaint.get("complainedRecipients") or []
        ]
    return []


def _ses_bounce(bounce: dict[str, Any], recipient: dict[str, Any], common: dict) -> BounceEvent:
    """One SES bounced recipient as a BounceEvent."""
    kind, counts = _ses_kind(bounce, recipient)
    email = str(recipient.get("emailAddress") or "").lower() or None
    return BounceEvent(
        type=kind,
        email=email,
        status=recipient.get("status"),
        diagnostic=recipient.get("diagnosticCode")
        or f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}",
        counts=counts,
        event_key=event_key("ses", bounce.get("feedbackId"), email, kind),
        occurred_at=iso_time(bounce.get("timestamp")),
        **common,
    )


def iso_time(value: object) -> datetime | None:
    """An ISO 8601 timestamp ("2016-01-27T14:59:38.237Z") as an aware datetime."""
    # .NET (Postmark) writes seven fractional digits; datetime takes at most six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", str(value or "")).replace("Z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp and stamp.tzinfo is None else stamp
