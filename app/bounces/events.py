"""A bounce event as every source reports it, and the helpers that read a report's identity."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime

# A bounce quotes what it needs in its first few hundred kB; scanning more only costs time.
MAX_SCAN = 1_000_000

VERP = re.compile(r"\bbounces\+([A-Za-z0-9._=-]+)@[A-Za-z0-9.-]+", re.IGNORECASE)
MESSAGE_ID = re.compile(r"^Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
REDACTED = re.compile(r"redacted|^x+@|^\*+@", re.I)
# A usable mailbox: no empty or doubled dots, a dotted domain with a letter TLD.
_ATOM = r"[^@\s.<>()\[\],;:\"]+"
ADDRESS = re.compile(rf"^{_ATOM}(\.{_ATOM})*@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{{2,}}$", re.I)


@dataclass(frozen=True)
class BounceEvent:
    """One bounce, complaint or unsubscribe about one recipient, from any source."""

    type: str
    email: str | None
    status: str | None = None
    diagnostic: str | None = None
    counts: bool = True
    message_id: str | None = None
    verp_token: str | None = None
    provider_id: str | None = None
    event_key: str = ""
    occurred_at: datetime | None = None


class NotABounce(ValueError):
    """The message holds no bounce or complaint."""


def event_key(source: str, *parts: object) -> str:
    """A stable dedupe key: the same event delivered twice gives the same key."""
    digest = hashlib.sha256("\0".join(str(p or "") for p in parts).encode()).hexdigest()
    return f"{source}:{digest}"


def text_of(msg: Message) -> str:
    """The decoded text of every text part, capped, where MTAs write their explanations."""
    chunks: list[str] = []
    size = 0
    for part in msg.walk():
        if part.get_content_maintype() != "text" or size > MAX_SCAN:
            continue
        chunk = decoded(part)
        chunks.append(chunk[:MAX_SCAN])
        size += len(chunk)
    return "\n".join(chunks)


def decoded(part: Message) -> str:
    """A part's payload as text, whatever its transfer encoding and charset claim."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return str(part.get_payload() or "")
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", "replace")


def verp_token(*values: object) -> str | None:
    """The token of the first VERP address bounces+<token>@domain among the values."""
    for value in values:
        if value and (found := VERP.search(str(value))):
            return found[1]
    return None


def message_id_in(text: str) -> str | None:
    """The first Message-ID header quoted in a text (the original's, in a bounce body)."""
    found = MESSAGE_ID.search(text)
    return found[1] if found else None


def when(value: object) -> datetime | None:
    """A date header as a datetime, or None when it is missing or broken."""
    try:
        stamp = parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    # "-0000" means "zone unknown" (RFC 5322); UTC is the best guess and keeps datetimes aware.
    return stamp.replace(tzinfo=UTC) if stamp and stamp.tzinfo is None else stamp


def clean_address(value: object, *, redacted: bool = False) -> str | None:
    """The bare address in a header or DSN field, None when missing or malformed.

    With `redacted`, also None for a complaint's placeholder ("redacted", "xxxx@"): feedback
    loops hide the complainer that way, while a bounce's x-only address is a real one.
    """
    text = str(value or "")
    if ";" in text and "@" in text.split(";", 1)[1]:
        text = text.split(";", 1)[1]  # "rfc822; user@example.org"
    address = (getaddresses([text]) or [("", "")])[0][1].strip().strip("<>")
    if not ADDRESS.fullmatch(address) or (redacted and REDACTED.search(address)):
        return None
    return address.lower()


@dataclass(frozen=True)
class Context:
    """What one report says about the original message, shared by all its recipients."""

    basis: str
    message_id: str | None
    verp_token: str | None
    occurred_at: datetime | None

    @classmethod
    def of(cls, msg: Message, text: str, original: Message | None = None) -> Context:
        """Gather the original's identity from the bounce's envelope and what it quotes."""
        start = text.find("Return-Path:")
        quoted = original or HeaderParser().parsestr(text[start:] if start >= 0 else "")
        token = verp_token(
            *(msg.get(h) for h in ("X-Original-To", "Delivered-To", "Envelope-To", "To")),
            quoted.get("Return-Path"),
            text,
        )
        # A bounce's own Message-ID is stable across redeliveries; its Received lines are not.
        own_id = msg.get("Message-ID")
        basis = str(own_id) if own_id else hashlib.sha256(text.encode()).hexdigest()
        original_id = quoted.get("Message-ID") if original is not None else None
        return cls(
            basis=basis,
            message_id=str(original_id).strip() if original_id else message_id_in(text),
            verp_token=token,
            occurred_at=when(msg.get("Date")),
        )

    def event(
        self, email: str | None, kind: str, counts: bool, status: str | None, diag: str | None
    ) -> BounceEvent:
        """A BounceEvent for one recipient of this report."""
        address = clean_address(email)
        return BounceEvent(
            type=kind,
            email=address,
            status=status,
            diagnostic=diag,
            counts=counts,
            message_id=self.message_id,
            verp_token=self.verp_token,
            event_key=event_key("dsn", self.basis, address, self.message_id, kind),
            occurred_at=self.occurred_at,
        )
