"""Provider webhooks: SendGrid, Postmark and Mailgun payloads and signatures (SES: ses.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.bounces.events import BounceEvent, event_key, message_id_in, verp_token
from app.bounces.ses import iso_time, parse_ses
from app.bounces.sns import SignatureError, verify_sns
from app.replies import classify

__all__ = [
    "SignatureError",
    "parse_mailgun",
    "parse_postmark",
    "parse_sendgrid",
    "parse_ses",
    "verify_mailgun",
    "verify_sendgrid",
    "verify_sns",
]

# Where our dispatcher may put its own identifiers in a provider's custom arguments/metadata.
MESSAGE_ID_KEYS = ("message_id", "tidings_message_id", "Message-ID", "smtp-id")
VERP_KEYS = ("verp_token", "tidings_verp", "return_path", "bounce_token")
# Seconds a signed webhook stays acceptable (Mailgun's own advice; SendGrid the same).
FRESHNESS = 300


def _ours(args: dict[str, Any]) -> tuple[str | None, str | None]:
    """Our own Message-ID and VERP token, if the provider carried them back to us."""
    message_id = next((str(args[k]) for k in MESSAGE_ID_KEYS if args.get(k)), None)
    if message_id and not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    token = next((str(args[k]) for k in VERP_KEYS if args.get(k)), None)
    if token and "@" in token:
        token = verp_token(token)
    return message_id, token or verp_token(*(v for v in args.values() if isinstance(v, str)))


def _dict(value: object) -> dict[str, Any]:
    """value when it is a JSON object, else an empty one: payloads are untrusted."""
    return value if isinstance(value, dict) else {}


def _stamp(value: object) -> datetime | None:
    """A Unix timestamp as an aware datetime."""
    try:
        return datetime.fromtimestamp(float(str(value)), UTC) if value is not None else None
    except (ValueError, OverflowError, OSError):
        return None


def _email(value: object) -> str | None:
    """A recipient address, lowercased, or None."""
    return str(value).strip().lower() or None if value else None


def fresh(timestamp: str, *, provider: str, max_age: int, now: float | None) -> None:
    """Refuse a signed timestamp further than max_age seconds from now: a replay window."""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except (TypeError, ValueError) as exc:
        raise SignatureError(f"the {provider} timestamp is not a number") from exc
    # nan compares false with everything, so it is refused by name.
    if not age <= max_age:
        raise SignatureError(f"the {provider} signature is stale")


def verify_sendgrid(
    *,
    public_key: str,
    payload: bytes,
    signature: str,
    timestamp: str,
    max_age: int = FRESHNESS,
    now: float | None = None,
) -> None:
    """Check SendGrid's ECDSA P-256 signature over timestamp + body and its age; raise if bad."""
    # A genuine signature from long ago is a captured request replayed.
    fresh(timestamp, provider="SendGrid", max_age=max_age, now=now)
    try:
        if "BEGIN" in public_key:
            key = serialization.load_pem_public_key(public_key.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(public_key))
        raw_signature = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SignatureError("unreadable SendGrid key or signature") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureError("the SendGrid verification key is not an EC key")
    try:
        key.verify(raw_signature, timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError("the SendGrid signature does not match") from exc


def _text(value: object) -> str | None:
    """A payload field as text: providers send codes as numbers as often as strings."""
    return None if value is None or value == "" else str(value)


def _sendgrid_kind(event: dict[str, Any]) -> tuple[str, bool] | None:
    """What one SendGrid event means for the address, or None when it is no bounce."""
    name = event.get("event")
    reason = _text(event.get("reason")) or ""
    if name == "bounce":
        if event.get("type") == "blocked":  # refused for reputation or content: about us
            return "soft", False
        verdict = classify(reason, status=_text(event.get("status")))
        return verdict.kind, verdict.counts
    if name == "dropped":
        # SendGrid drops sends to addresses it already suppresses; the reason says why.
        return {
            "Bounced Address": ("hard", True),
            "Invalid": ("hard", True),
            "Spam Reporting Address": ("complaint", True),
            "Unsubscribed Address": ("unsubscribe", True),
        }.get(reason)
    if name == "spamreport":
        return "complaint", True
    if name in ("unsubscribe", "group_unsubscribe"):
        return "unsubscribe", True
    return None


def parse_sendgrid(events: list[dict[str, Any]]) -> list[BounceEvent]:
    """The bounces, complaints and unsubscribes in a SendGrid event webhook batch."""
    found = []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or (kind := _sendgrid_kind(event)) is None:
            continue
        message_id, token = _ours(event)
        email = _email(event.get("email"))
        key = event.get("sg_event_id") or event_key("x", event.get("sg_message_id"), email, kind[0])
        found.append(
            BounceEvent(
                type=kind[0],
                email=email,
                status=_text(event.get("status")),
                diagnostic=_text(event.get("reason")) or _text(event.get("response")),
                counts=kind[1],
                message_id=message_id,
                verp_token=token,
                provider_id=event.get("sg_message_id"),
                event_key=f"sendgrid:{key}"[:128],
                occurred_at=_stamp(event.get("timestamp")),
            )
        )
    return found


POSTMARK_TYPES: dict[str, tuple[str, bool]] = {
    "HardBounce": ("hard", True),
    "BadEmailAddress": ("hard", True),
    "ManuallyDeactivated": ("hard", True),
    "SoftBounce": ("soft", True),
    "Transient": ("soft", True),
    "DnsError": ("soft", True),
    "SpamNotification": ("complaint", True),
    "SpamComplaint": ("complaint", True),
    "Unsubscribe": ("unsubscribe", True),
    # Refused for our content or reputation: recorded, not held against the address.
    "Blocked": ("hard", False),
    "DMARCPolicy": ("hard", False),
    "VirusNotification": ("hard", False),
    "ContentRelated": ("hard", False),
}


def parse_postmark(payload: dict[str, Any]) -> list[BounceEvent]:
    """The bounce or spam complaint in a Postmark webhook (auto-responders etc. are ignored)."""
    if not isinstance(payload, dict):
        return []
    record = payload.get("RecordType")
    kind = POSTMARK_TYPES.get(str(payload.get("Type")))
    if record not in ("Bounce", "SpamComplaint") or kind is None:
        return []
    metadata = _dict(payload.get("Metadata"))
    message_id, token = _ours(metadata)
    dump = str(payload.get("Content") or "")
    fallback = event_key("x", payload.get("MessageID"), payload.get("Email"), kind[0])
    return [
        BounceEvent(
            type=kind[0],
            email=_email(payload.get("Email")),
            diagnostic=payload.get("Details") or payload.get("Description") or None,
            counts=kind[1],
            message_id=message_id or message_id_in(dump),
            verp_token=token or verp_token(dump),
            provider_id=payload.get("MessageID"),
            event_key=f"postmark:{record}:{payload.get('ID') or fallback}",
            occurred_at=iso_time(payload.get("BouncedAt")),
        )
    ]


def verify_mailgun(
    *,
    signing_key: str,
    timestamp: str,
    token: str,
    signature: str,
    max_age: int = FRESHNESS,
    now: float | None = None,
) -> None:
    """Check Mailgun's HMAC-SHA256 over timestamp + token, and its age; raise SignatureError.

    The HMAC does not cover the event: the caller must also refuse a token seen before
    (replay.first_use), or a fresh captured signature could carry any payload.
    """
    # A captured webhook replayed later must fail even though its HMAC is genuine.
    fresh(timestamp, provider="Mailgun", max_age=max_age, now=now)
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), str(signature).lower()):
        raise SignatureError("the Mailgun signature does not match")


def _mailgun_kind(data: dict[str, Any]) -> tuple[str, bool, str | None, str | None] | None:
    """(type, counts, status, diagnostic) of one Mailgun event, or None when it is no bounce."""
    name = data.get("event")
    if name == "complained":
        return "complaint", True, None, None
    if name == "unsubscribed":
        return "unsubscribe", True, None, None
    if name != "failed":
        return None
    status = _dict(data.get("delivery-status"))
    parts = (status.get("code"), status.get("message"), status.get("description"))
    diagnostic = " ".join(str(p) for p in parts if p) or data.get("reason") or None
    enhanced = status.get("enhanced-code") or None
    if data.get("severity") == "temporary":
        counts = classify(diagnostic, status=enhanced, action="delayed").counts
        return "soft", counts, enhanced, diagnostic
    if data.get("reason") == "suppress-bounce":  # Mailgun already knows the address bounces
        return "hard", True, enhanced, diagnostic
    verdict = classify(diagnostic, status=enhanced)
    return verdict.kind, verdict.counts, enhanced, diagnostic


def parse_mailgun(payload: dict[str, Any]) -> list[BounceEvent]:
    """The failure, complaint or unsubscribe in a Mailgun webhook ({"signature", "event-data"})."""
    data = payload.get("event-data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or (kind := _mailgun_kind(data)) is None:
        return []
    message = _dict(data.get("message"))
    headers = _dict(message.get("headers"))
    variables = _dict(data.get("user-variables"))
    message_id, token = _ours({"message_id": headers.get("message-id"), **variables})
    email = _email(data.get("recipient"))
    key = data.get("id") or event_key("x", headers.get("message-id"), email, kind[0])
    return [
        BounceEvent(
            type=kind[0],
            email=email,
            status=kind[2],
            diagnostic=kind[3],
            counts=kind[1],
            message_id=message_id,
            verp_token=token,
            provider_id=headers.get("message-id"),
            event_key=f"mailgun:{key}"[:128],
            occurred_at=_stamp(data.get("timestamp")),
        )
    ]
